"""The viewer's HTML: the packaged template (template.html, inline JS and CSS) with the trees
embedded as JSON, so the file opens from disk with no network and no other file."""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from reasoner.types import ReasonerError

DATA_MARK = "/*__DATA__*/"
TITLE_MARK = "__TITLE__"


def _template() -> str:
    return (resources.files("reasoner.viewer") / "template.html").read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element: every '<' and '/' escaped (JSON allows `\\/` and
    `\\u003c`), so no text in a tree can close the element or read as a link."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("/", "\\/")


def render_html(entries: list[dict[str, Any]], title: str = "") -> str:
    """The viewer page for `entries` (see `reasoner.viewer.sources`); the first one is shown,
    a picker lists them all."""
    if not entries:
        raise ReasonerError("view: there is no tree to draw")
    page = _template()
    name = title or (entries[0]["title"] if len(entries) == 1 else f"{len(entries)} step trees")
    return page.replace(TITLE_MARK, html.escape(name)).replace(DATA_MARK, embed_json(entries))


def write_html(entries: list[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Write the viewer page to `out` (parent directories created); returns the path."""
    path = Path(out)
    text = render_html(entries, title)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ReasonerError(f"view: cannot write {path}: {err}") from err
    return path

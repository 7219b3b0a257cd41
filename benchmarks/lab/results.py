"""Writing a lab result: indented JSON, its Markdown table beside it, the table on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(json_path: Path, report: dict[str, Any], markdown: str | None = None) -> None:
    """Write `report` to json_path (indent 2) and `markdown` to the same stem with .md; print
    the Markdown (else the JSON)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    json_path.write_text(text)
    if markdown is not None:
        json_path.with_suffix(".md").write_text(markdown)
    print((markdown if markdown is not None else text).rstrip("\n"))

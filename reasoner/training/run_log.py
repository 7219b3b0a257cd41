"""A trainer's JSONL log that resumes exactly: after a resume from step s it holds the records of
steps <= s (those written after the last checkpoint are dropped; they are logged again)."""

from __future__ import annotations

import json
from pathlib import Path

from reasoner.jsonl import read_jsonl


def resume_log(path: Path, start: int) -> None:
    """Make `path` what an uninterrupted run had written after `start` steps."""
    if not path.exists():
        return
    if start == 0:
        path.unlink()
        return
    kept = [r for r in read_jsonl(path, "log record") if int(r.get("step", 0)) <= start]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)

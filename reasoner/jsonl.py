"""Append-safe JSONL files shared by long jobs (labeling, benchmarks): repair a torn tail."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path


def repair_tail(path: Path) -> None:
    """Before appending to a JSONL file: cut a partial last line left by a killed writer.

    A last line that is complete JSON but lacks its newline is kept and ended instead.

    Without this the next record would be glued onto the fragment and corrupt a middle line.
    """
    if not Path(path).exists():
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start, chunk = size, 1 << 16
        while start > 0:  # scan backwards for the last newline
            lo = max(0, start - chunk)
            f.seek(lo)
            block = f.read(start - lo)
            cut = block.rfind(b"\n")
            if cut >= 0:
                start = lo + cut + 1
                break
            start = lo
        f.seek(start)
        tail = f.read()
        try:
            json.loads(tail.decode("utf-8"))
            complete = True
        except (UnicodeDecodeError, json.JSONDecodeError):
            complete = False
        if complete:
            f.seek(size)
            f.write(b"\n")
        else:
            warnings.warn(
                f"{path}: removing a truncated last line ({len(tail)} bytes, an interrupted "
                "write) before appending",
                RuntimeWarning,
                stacklevel=3,
            )
            f.truncate(start)
        f.flush()
        os.fsync(f.fileno())

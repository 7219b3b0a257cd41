"""Append-safe JSONL files shared by every long job (labeling, benchmarks, lab experiments):
fsynced appends, torn-tail repair, and reads that name a corrupted line."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from reasoner.types import ReasonerError


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


def read_jsonl(path: str | Path, what: str = "row") -> list[dict[str, Any]]:
    """Every record of a JSONL file (none when it does not exist).

    A torn last line (a writer killed mid-line) is skipped; a malformed line anywhere else is an
    error naming the file and line, since it means the file was edited or corrupted.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                continue
            raise ReasonerError(
                f"{path}:{i + 1}: malformed {what} ({err}); the file was edited or corrupted: "
                "delete that line (or the file) and rerun"
            ) from err
    return rows


def append_jsonl(target: str | Path | IO[str], rows: Iterable[dict[str, Any]]) -> None:
    """Append records, one line each, then flush and fsync: a kill loses at most the last line.

    `target` is a path (its torn tail is repaired first) or a file already open for appending.
    """
    if isinstance(target, (str, Path)):
        repair_tail(Path(target))
        with open(target, "a") as fh:
            append_jsonl(fh, rows)
        return
    target.write("".join(json.dumps(row) + "\n" for row in rows))
    target.flush()
    os.fsync(target.fileno())

"""Append-safe JSONL files shared by every long job (labeling, benchmarks, lab experiments):
fsynced appends, torn-tail repair, and reads that name a corrupted line.

Files are UTF-8; a byte-order mark at the start of a file (some editors write one) is accepted.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from reasoner.types import ReasonerError

BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark


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
            json.loads(tail.decode("utf-8-sig" if start == 0 else "utf-8"))
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


def split_lines(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of each non-blank line of a file's bytes (a leading
    byte-order mark dropped); shared by every JSONL reader, so they agree on line numbers."""
    offset = len(BOM) if data.startswith(BOM) else 0
    for number, raw in enumerate(data[offset:].split(b"\n"), start=1):
        if raw.strip():
            yield number, offset, raw
        offset += len(raw) + 1


def decode_line(raw: bytes) -> Any:
    """One JSON line's value; ValueError (a UnicodeDecodeError or a JSONDecodeError) if it is
    not UTF-8 JSON."""
    return json.loads(raw.decode("utf-8"))


def iter_jsonl(path: str | Path, what: str = "row") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each record of a JSONL file (none when it does not exist).

    A torn last line (a writer killed mid-line) is skipped; a line anywhere else that is not a
    JSON object (malformed, not UTF-8, a bare value) is an error naming the file and line, since
    it means the file was edited or corrupted.
    """
    path = Path(path)
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReasonerError(f"cannot read {path}: {err}") from err
    lines = list(split_lines(data))
    for i, (number, _, raw) in enumerate(lines):
        try:
            row = decode_line(raw)
        except ValueError as err:
            if i == len(lines) - 1:
                continue  # a torn last line: the kill it comes from lost only this row
            raise ReasonerError(
                f"{path}:{number}: malformed {what} ({err}); the file was edited or corrupted: "
                "delete that line (or the file) and rerun"
            ) from None
        if not isinstance(row, dict):
            raise ReasonerError(
                f"{path}:{number}: malformed {what} (a JSON {type(row).__name__}, not an "
                "object); the file was edited or corrupted: delete that line (or the file) "
                "and rerun"
            )
        yield number, row


def read_jsonl(path: str | Path, what: str = "row") -> list[dict[str, Any]]:
    """Every record of a JSONL file (none when it does not exist); see `iter_jsonl`."""
    return [row for _, row in iter_jsonl(path, what)]


def append_jsonl(target: str | Path | IO[str], rows: Iterable[dict[str, Any]]) -> None:
    """Append records, one line each, then flush and fsync: a kill loses at most the last line.

    `target` is a path (its torn tail is repaired first) or a file already open for appending.
    """
    if isinstance(target, (str, Path)):
        repair_tail(Path(target))
        with open(target, "a", encoding="utf-8") as fh:
            append_jsonl(fh, rows)
        return
    target.write("".join(json.dumps(row) + "\n" for row in rows))
    target.flush()
    os.fsync(target.fileno())

"""One bench process per output directory: an exclusive lock on `--out`/.lock for the whole run.

Two processes on one directory would compute every row twice and interleave their lines. The
lock is fcntl.flock on a file in the directory, which the OS drops when its holder exits however
it exits (kill -9 included), so a stale lock from a killed run is simply taken over; the file
holds the holder's pid for the message a second process gets.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reasoner.types import ReasonerError

LOCK = ".lock"


@contextmanager
def locked_out_dir(out: Path) -> Iterator[Path]:
    """Hold `out`'s lock for the block (creating `out`); a held one is an error naming its pid."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ReasonerError(f"cannot write to the output directory {out}: {err}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise ReasonerError(
                f"{out} is in use by another bench process (pid {holder}); wait for it to "
                "finish, or give another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield out
    finally:
        os.close(fd)  # releases the lock

"""The Executor interface: run a job's shards, hand back each result in shard order.

A `Job` is a small picklable description (a config, model specs) whose `make_worker()` loads the
engines once and returns the function that computes one shard. The local executor calls it in this
process; the Ray executor builds one worker per actor (see `ray_pool`). Either way results come
back in shard order, which is what makes the driver's output independent of where it ran.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class Job(Protocol):
    """What the shards of one command need: `make_worker()` loads its engines (once per worker)."""

    def make_worker(self) -> Callable[[Any], Any]: ...


@dataclass
class ShardStats:
    """How one shard ran: for the throughput log, never for the records."""

    index: int
    worker: int
    pid: int
    seconds: float  # in the worker
    round_trip: float  # from submission to its result at the driver

    @property
    def waited(self) -> float:
        """Seconds between submission and result not spent computing: transfer, scheduling and
        queueing behind the actor's earlier shard (two are in flight per actor)."""
        return max(0.0, self.round_trip - self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "waited": self.waited}


class Executor(ABC):
    """Runs shards; `on_result` (when set) is called with each shard's stats as it is handed back."""

    kind = "?"
    on_result: Callable[[ShardStats], None] | None = None

    @abstractmethod
    def start(self, job: Job) -> None:
        """Build `job`'s workers (load their engines) now, so a worker that cannot load fails
        before the caller touches its output; `map` starts them itself when needed."""

    @abstractmethod
    def map(self, job: Job, payloads: Sequence[Any]) -> Iterator[tuple[Any, ShardStats]]:
        """(result, stats) of every payload, in payload order, computed by `job`'s workers."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (and a cluster this executor started)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every shard in this process, one after the other, on one worker per job."""

    kind = "local"

    def __init__(self) -> None:
        self._job: Job | None = None
        self._worker: Callable[[Any], Any] | None = None

    def start(self, job: Job) -> None:
        if self._worker is None or job is not self._job:
            self._job, self._worker = job, job.make_worker()

    def map(self, job: Job, payloads: Sequence[Any]) -> Iterator[tuple[Any, ShardStats]]:
        self.start(job)
        worker = self._worker
        assert worker is not None
        for index, payload in enumerate(payloads):
            t0 = time.perf_counter()
            result = worker(payload)
            seconds = time.perf_counter() - t0
            stats = ShardStats(index, 0, os.getpid(), seconds, seconds)
            if self.on_result is not None:
                self.on_result(stats)
            yield result, stats

    def close(self) -> None:
        self._job = self._worker = None  # the engines go with the worker

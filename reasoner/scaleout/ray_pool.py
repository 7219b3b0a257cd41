"""The Ray executor: a pool of actors, each owning one job worker (its engines) for its life.

Shards go to the least busy actor (two in flight each, so none idles between shards) and their
results are handed back in shard order. An actor that dies (a killed process, a lost node) is
restarted by Ray, reloads its engines and reruns the shards it held (max_restarts and
max_task_retries): the driver receives each shard's result once, so nothing is duplicated. An
actor dead for good, or an engine that does not load, is one ReasonerError naming the worker and
the cause; the driver has written only whole shards by then.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from reasoner.scaleout.executor import Executor, Job, ShardStats
from reasoner.scaleout.ray_cluster import Cluster
from reasoner.scaleout.spec import ExecutorSpec
from reasoner.types import ReasonerError

IN_FLIGHT = 2  # shards queued on one actor at a time


@dataclass
class ShardFailure:
    """A ReasonerError raised by a worker, sent back as a value (not as a traceback)."""

    message: str


class ShardActor:
    """One worker process: loads the job's engines once (a failure is kept, reported by `ready`)."""

    def __init__(self, job: Job, threads: int):
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # a job without torch
            pass
        self.error: str | None = None
        self.worker: Callable[[Any], Any] | None = None
        try:
            self.worker = job.make_worker()
        except ReasonerError as err:
            self.error = str(err)
        except Exception as err:  # e.g. CUDA out of memory while loading
            self.error = f"{type(err).__name__}: {err}"

    def ready(self) -> tuple[str | None, int]:
        return self.error, os.getpid()

    def run(self, payload: Any) -> tuple[Any, float, int] | ShardFailure:
        if self.worker is None:
            return ShardFailure(f"it could not load its engine: {self.error}")
        t0 = time.perf_counter()
        try:
            result = self.worker(payload)
        except ReasonerError as err:
            return ShardFailure(str(err))
        return result, time.perf_counter() - t0, os.getpid()


def _cause(err: BaseException) -> str:
    """The first lines of a Ray error, without its tracebacks."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:3])[:600]


class RayPool:
    """`spec.workers` ShardActors of one job, started and checked ready."""

    def __init__(self, ray: Any, spec: ExecutorSpec, job: Job):
        self.ray = ray
        self.spec = spec
        actor = ray.remote(ShardActor).options(
            num_cpus=spec.cpus_per_worker,
            num_gpus=spec.gpus_per_worker,
            max_restarts=spec.max_restarts,
            max_task_retries=spec.max_restarts,
        )
        self.actors = [actor.remote(job, spec.threads) for _ in range(spec.workers)]
        self.pids: list[int] = [0] * spec.workers
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        refs = [a.ready.remote() for a in self.actors]
        for i, ref in enumerate(refs):
            try:
                error, pid = self.ray.get(ref, timeout=self.spec.start_timeout)
            except self.ray.exceptions.GetTimeoutError:
                raise ReasonerError(
                    f"Ray worker {i} did not start within {self.spec.start_timeout:g} s (the "
                    f"cluster's free resources: {self.ray.available_resources()})"
                ) from None
            except self.ray.exceptions.RayActorError as err:
                raise ReasonerError(
                    f"Ray worker {i} died while loading its engine: {_cause(err)}"
                ) from None
            if error is not None:
                raise ReasonerError(f"Ray worker {i} could not load its engine: {error}")
            self.pids[i] = pid

    def map(
        self, payloads: Sequence[Any], on_result: Callable[[ShardStats], None] | None
    ) -> Iterator[tuple[Any, ShardStats]]:
        """Every payload's result in order; at most IN_FLIGHT shards per actor at once."""
        ray = self.ray
        pending: dict[Any, tuple[int, int, float]] = {}  # ref -> (index, worker, submitted)
        finished: dict[int, tuple[Any, ShardStats]] = {}
        load = [0] * len(self.actors)
        submitted = handed = 0
        window = IN_FLIGHT * len(self.actors)
        while handed < len(payloads):
            while submitted < len(payloads) and len(pending) < window:
                if submitted - handed >= 4 * window:  # do not run far ahead of the writer
                    break
                worker = min(range(len(load)), key=load.__getitem__)
                ref = self.actors[worker].run.remote(payloads[submitted])
                pending[ref] = (submitted, worker, time.perf_counter())
                load[worker] += 1
                submitted += 1
            if handed not in finished:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index, worker, start = pending.pop(ref)
                    load[worker] -= 1
                    finished[index] = self._collect(ref, index, worker, start)
            while handed in finished:
                result, stats = finished.pop(handed)
                if on_result is not None:
                    on_result(stats)
                yield result, stats
                handed += 1

    def _collect(self, ref: Any, index: int, worker: int, start: float) -> tuple[Any, ShardStats]:
        try:
            out = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            raise ReasonerError(
                f"Ray worker {worker} died running shard {index}, after the "
                f"{self.spec.max_restarts} restarts allowed; giving up: {_cause(err)}"
            ) from None
        if isinstance(out, ShardFailure):
            raise ReasonerError(f"Ray worker {worker}, shard {index}: {out.message}")
        result, seconds, pid = out
        self.pids[worker] = pid
        return result, ShardStats(index, worker, pid, seconds, time.perf_counter() - start)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors = []


class RayExecutor(Executor):
    """Shards on Ray actors (see the module docstring); the cluster is joined on first use."""

    kind = "ray"

    def __init__(self, spec: ExecutorSpec):
        self.spec = spec
        self._cluster: Cluster | None = None
        self._job: Job | None = None
        self.pool: RayPool | None = None

    def start(self, job: Job) -> None:
        if self._cluster is None:
            self._cluster = Cluster(self.spec)
        if self.pool is None or job is not self._job:
            if self.pool is not None:
                self.pool.close()
            self.pool = None
            self.pool, self._job = RayPool(self._cluster.ray, self.spec, job), job

    def map(self, job: Job, payloads: Sequence[Any]) -> Iterator[tuple[Any, ShardStats]]:
        if not payloads:
            return iter(())
        self.start(job)
        assert self.pool is not None
        return self.pool.map(payloads, self.on_result)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

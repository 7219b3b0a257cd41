"""The lockstep engine: one thread owns the Controller and advances every live search together.

Requests are queued from the web server's event loop; at each tick boundary the engine starts the
searches that arrived (so a request arriving while a tick runs joins the next one), applies
cancellations, then serves one round of model calls for all live searches at once: continuous
batching of searches. Each search keeps its own seed, so its result does not depend on what else
is in flight.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reasoner.controller import Controller, RunHandle
from reasoner.search import Strategy
from reasoner.types import Problem, ReasonerError, Solution


@dataclass(eq=False)  # a job is itself: compared (and found in the live list) by identity
class Job:
    """One search request and, once the engine is done with it, its outcome."""

    problem: Problem
    strategy: Strategy
    budget: int
    seed: int
    temperature: float | None = None
    aggregation: str | None = None
    # called in the engine thread: once admitted (its search started, or refused), after every
    # tick it took part in, and once at the end (the only thread that touches the models)
    on_admit: Callable[[Job], None] | None = None
    on_tick: Callable[[Job], None] | None = None
    on_done: Callable[[Job], None] | None = None
    admitted: bool = False
    run: RunHandle | None = None
    solution: Solution | None = None
    error: str | None = None  # why the search failed (a bad request found late, or a bug)
    failed_by_bug: bool = False
    cancelled: bool = False
    ticks: int = 0
    max_in_flight: int = 0  # the most searches that shared one of this job's ticks
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0


class Busy(Exception):
    """More searches in flight than the engine admits."""


class Engine:
    """Runs every submitted Job on one Controller, in lockstep ticks, in its own thread."""

    def __init__(self, controller: Controller, max_concurrent: int = 64):
        self.controller = controller
        self.max_concurrent = max_concurrent
        self._inbox: queue.Queue[tuple[str, Job | None]] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.ticks = 0
        self.served = 0
        self.cancelled = 0
        self.crashed: str | None = None  # set when the engine thread died (a bug)
        self._thread = threading.Thread(target=self._loop, name="reasoner-engine", daemon=True)

    # ---- called from any thread --------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every live search and end the thread."""
        self._inbox.put(("stop", None))
        self._thread.join(timeout)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, job: Job) -> None:
        """Queue a job for the next tick; Busy when max_concurrent searches are in flight."""
        with self._lock:
            if self._in_flight >= self.max_concurrent:
                raise Busy(f"{self._in_flight} searches in flight (the server's --max-concurrent)")
            self._in_flight += 1
        self._inbox.put(("start", job))

    def cancel(self, job: Job) -> None:
        """Stop a job's search at the next tick boundary (a no-op once it is done)."""
        self._inbox.put(("cancel", job))

    # ---- the engine thread -------------------------------------------------------------------
    def _loop(self) -> None:
        live: list[Job] = []
        try:
            while True:
                items = self._drain(block=not live)
                for i, (kind, job) in enumerate(items):
                    if kind == "stop":
                        for j in live:
                            self._cancel(j, "server shutting down")
                        for later, queued in items[i + 1 :]:
                            if later == "start":
                                queued.cancelled = True
                                self._fail(queued, "server shutting down")
                        return
                    if kind == "start":
                        self._admit(job, live)
                    elif kind == "cancel" and job in live:
                        live.remove(job)
                        self._cancel(job, "cancelled")
                if live:
                    self._tick(live)
                    live = [j for j in live if j.solution is None and j.error is None]
                    if not live:  # idle: the next search's metered cost is its own
                        self.controller.clear_caches()
        except BaseException:  # a bug in the engine itself: fail what is live, refuse the rest
            self.crashed = traceback.format_exc()
            print(f"reasoner serve: the engine stopped:\n{self.crashed}", file=sys.stderr)
            message = "the search engine stopped (a bug; see the server log)"
            for j in live:
                self._fail(j, message, bug=True)
            while True:  # requests queued meanwhile are answered too (later ones get 503)
                try:
                    kind, job = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if kind == "start":
                    self._fail(job, message, bug=True)

    def _drain(self, block: bool) -> list[tuple[str, Job | None]]:
        items = [self._inbox.get()] if block else []
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                return items

    def _admit(self, job: Job, live: list[Job]) -> None:
        job.started = time.perf_counter()
        try:
            job.run = self.controller.start(
                job.problem,
                job.strategy,
                job.budget,
                seed=job.seed,
                temperature=job.temperature,
                aggregation=job.aggregation,
            )
        except ReasonerError as err:
            job.error = str(err)
        self._admitted(job)
        if job.error is not None:
            self._fail(job, job.error)
        elif job.run.solution is not None:
            self._done(job)
        else:
            live.append(job)

    def _admitted(self, job: Job) -> None:
        if not job.admitted:
            job.admitted = True
            if job.on_admit is not None:
                job.on_admit(job)

    def _tick(self, live: list[Job]) -> None:
        try:
            self.controller.tick([j.run for j in live])
        except Exception as err:  # a strategy or model bug: these searches' state is unknown
            traceback.print_exc()
            for j in live:
                self.controller.cancel(j.run, "error")
                self._fail(
                    j, f"{type(err).__name__}: {err}", bug=not isinstance(err, ReasonerError)
                )
            return
        self.ticks += 1
        for j in live:
            j.ticks += 1
            j.max_in_flight = max(j.max_in_flight, len(live))
            if j.run.solution is not None:
                self._done(j)
            elif j.on_tick is not None:
                j.on_tick(j)

    def _cancel(self, job: Job, reason: str) -> None:
        self.controller.cancel(job.run, reason)
        job.cancelled = True
        self.cancelled += 1
        self._release(job)

    def _fail(self, job: Job, message: str, bug: bool = False) -> None:
        job.error = message
        job.failed_by_bug = bug
        self._release(job)

    def _done(self, job: Job) -> None:
        job.solution = job.run.solution
        self.served += 1
        self._release(job)

    def _release(self, job: Job) -> None:
        with self._lock:
            self._in_flight -= 1
        self._admitted(job)  # a job refused before its search started hears it first
        if job.on_done is not None:
            job.on_done(job)

    def snapshot(self) -> dict[str, Any]:
        """What /health reports about the engine."""
        return {
            "in_flight": self._in_flight,
            "max_concurrent": self.max_concurrent,
            "ticks": self.ticks,
            "served": self.served,
            "cancelled": self.cancelled,
        }

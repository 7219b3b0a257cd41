"""The math-verify worker pool: symbolic comparisons in persistent subprocesses with deadlines.

math-verify bounds its own work with ``signal.alarm``, which only works in the main thread, and a
runaway SymPy call (e.g. a huge power) can sit inside C code where no Python-level interrupt
reaches it. So math-verify's timeouts are disabled and the comparison runs in a small pool of
persistent worker processes (plain ``subprocess`` + JSON lines over pipes; no
``multiprocessing``, so nothing re-imports the caller's ``__main__`` and nothing is forked from a
process that may hold torch threads). The caller waits on a queue with a deadline; a worker that
misses it is killed and a fresh one is started on the next call.

This module imports only the standard library at top level: the worker process loads this very
file by path, without importing the `reasoner` package.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time

logger = logging.getLogger("reasoner.grading")

STARTUP_TIMEOUT = 60.0  # seconds a fresh worker may take to import math-verify (busy machines)
WORKER_MEMORY_MB = int(os.environ.get("REASONER_GRADER_MEMORY_MB", "2048") or 2048)
WORKER_MAX_JOBS = 20_000  # recycle a worker after this many jobs to bound SymPy cache growth

_BOOT = (
    "import importlib.util, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"  # no shadowing from the cwd
    "spec = importlib.util.spec_from_file_location('_reasoner_grading_worker', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(mod)\n"
    "mod._worker_main()\n"
)


class _Worker:
    """One persistent math-verify process, spoken to with JSON lines over its stdin/stdout."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.jobs = 0
        self.error: str | None = None
        self.startup_seconds = 0.0  # set when the pool starts it for a call

    def start(self) -> bool:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                bufsize=1,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            self.error = f"could not start grading worker: {exc}"
            self.proc = None
            return False
        try:
            threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        except RuntimeError as exc:
            self.error = f"could not start grading worker reader thread: {exc}"
            self.kill()
            return False
        ready = self._get(time.monotonic() + STARTUP_TIMEOUT)
        if ready is None or not ready.get("ready"):
            self.error = (ready or {}).get("error") or "grading worker did not start in time"
            self.kill()
            return False
        return True

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def _get(self, deadline: float) -> dict | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:  # the process died
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue  # stray output: ignore

    def compare(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from math-verify, or None on timeout/crash (the worker is then dead)."""
        if self.proc is None or self.proc.stdin is None:
            return None
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps({"id": self.jobs, "pred": pred, "gold": gold}) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self.kill()
            return None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._get(deadline)
            if reply is None:
                self.kill()
                return None
            if reply.get("id") == self.jobs:
                return bool(reply.get("ok"))

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # already gone
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except Exception:
                pass


class _Pool:
    """Up to MAX_WORKERS workers shared by all threads; a hung worker is killed and replaced."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.count = 0
        self.pid = os.getpid()

    def _check_fork(self) -> None:
        if os.getpid() != self.pid:  # forked child: the parent's pipes are not ours
            self.idle, self.count, self.pid = [], 0, os.getpid()

    def acquire(self, deadline: float | None = None) -> _Worker | None:
        """An idle or new worker; None when `deadline` (time.monotonic) passes first."""
        with self.cond:
            self._check_fork()
            while True:
                if self.idle:
                    return self.idle.pop()
                if self.count < self.max_workers:
                    self.count += 1
                    break
                # every busy worker finishes or is killed within its own deadline
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    return None
                self.cond.wait(wait)
                self._check_fork()
        worker = _Worker()
        started = time.monotonic()
        worker.start()
        worker.startup_seconds = time.monotonic() - started
        return worker

    def release(self, worker: _Worker, broken: bool) -> None:
        if broken or worker.proc is None or worker.jobs >= WORKER_MAX_JOBS:
            worker.kill()
        with self.cond:
            if os.getpid() != self.pid:
                return
            if worker.proc is None:
                self.count -= 1
            else:
                self.idle.append(worker)
            self.cond.notify()

    def compare(self, pred: str, gold: str, deadline: float) -> bool | None:
        """math-verify's verdict, or None when `deadline` (time.monotonic) passes first: the wait
        for a free worker counts, so a call never takes longer than its caller allowed (a
        worker's one-off start-up, importing math-verify, does not)."""
        worker = self.acquire(deadline)
        if worker is None:
            logger.warning(
                "symbolic grading found no free worker before its deadline (%d workers busy; "
                "set REASONER_GRADER_WORKERS to grade from more threads at once): %.80r vs %.80r",
                self.max_workers,
                pred,
                gold,
            )
            return None
        if worker.proc is None:
            error = worker.error
            self.release(worker, broken=True)
            from reasoner.types import ReasonerError  # lazy: the worker loads this file alone

            # a broken grader must not quietly grade everything False
            raise ReasonerError(f"the math-verify grading worker is unavailable: {error}")
        result = None
        try:
            deadline += worker.startup_seconds
            worker.startup_seconds = 0.0
            result = worker.compare(pred, gold, max(0.01, deadline - time.monotonic()))
        finally:
            self.release(worker, broken=result is None)
        if result is None:
            # graded False: say so where a user sees it (a run's accuracy counts it as wrong)
            logger.warning(
                "symbolic grading timed out (graded as not equal): %.80r vs %.80r", pred, gold
            )
        return result

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.count -= len(idle)
        for worker in idle:
            worker.kill()


# --------------------------------------------------------------------------------------------
# Worker side (runs in the child process)
# --------------------------------------------------------------------------------------------


def _mv_equal(pred: str, gold: str) -> bool:
    """math-verify equivalence of two answer strings (their own timeouts disabled)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold_parsed = parse("\\boxed{" + gold + "}", config, parsing_timeout=None)  # type: ignore[arg-type]
    pred_parsed = parse("\\boxed{" + pred + "}", config, parsing_timeout=None)  # type: ignore[arg-type]
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _worker_main() -> None:
    """Serve {"id", "pred", "gold"} JSON lines on stdin with {"id", "ok"} lines on stdout."""
    out = sys.stdout
    try:  # a runaway SymPy computation must not take the machine's memory with it
        import resource

        limit = WORKER_MEMORY_MB * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    try:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        import math_verify.grader
        import math_verify.parser

        math_verify.grader.TIMEOUT_WARNING_SHOWN = True  # we enforce time limits from outside
        math_verify.parser.TIMEOUT_WARNING_SHOWN = True
        _mv_equal("1", "1")  # warm the parsers up before announcing readiness
    except Exception as exc:
        out.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
        return
    parent = os.getppid()

    def watch_parent() -> None:  # exit if the parent dies while we are stuck in a computation
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            job = json.loads(line)
        except ValueError:
            continue
        try:
            ok = _mv_equal(str(job["pred"]), str(job["gold"]))
        except Exception:
            ok = False
        out.write(json.dumps({"id": job.get("id"), "ok": ok}) + "\n")
        out.flush()

"""Where a job runs: the executor flags shared by `label`, `bench` and `eval-prm`, checked once.

Executor settings never change results (they are not part of a run's config), so a run started
locally can be resumed on Ray and back.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from reasoner.types import ReasonerError

KINDS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSpec:
    """An executor: local (this process), or `workers` Ray actors of the given size."""

    kind: str = "local"
    address: str | None = None  # None: start a local Ray cluster; "auto" or HOST:PORT: join one
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_restarts: int = 3  # a dead actor is restarted (and its shards retried) this many times
    start_timeout: float = 600.0  # seconds for every worker to load its engine

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ReasonerError(f"--executor must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.workers < 1:
            raise ReasonerError(f"--workers must be >= 1, got {self.workers}")
        for flag, value, low in (
            ("--cpus-per-worker", self.cpus_per_worker, 0.0),
            ("--gpus-per-worker", self.gpus_per_worker, 0.0),
        ):
            if (
                not math.isfinite(value)
                or value < low
                or (flag == "--cpus-per-worker" and not value)
            ):
                raise ReasonerError(f"{flag} must be a number > {low:g}, got {value}")
        if self.max_restarts < 0:
            raise ReasonerError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.address is not None and not self.address.strip():
            raise ReasonerError("--ray-address is empty; give auto or HOST:PORT, or leave it out")

    @property
    def threads(self) -> int:
        """Torch threads per worker: its CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    """The executor flags, for a subcommand that runs shards (label, bench, eval-prm)."""
    group = parser.add_argument_group("scale-out (see docs/cluster.md)")
    group.add_argument(
        "--executor", choices=KINDS, default="local", help="run here (local) or on Ray actors"
    )
    group.add_argument(
        "--ray-address",
        help="the Ray cluster to join: auto (the one `ray start` began here) or HOST:PORT; "
        "without it a local cluster is started",
    )
    group.add_argument("--workers", type=int, help="Ray actors, each owning one engine (default 1)")
    group.add_argument("--gpus-per-worker", type=float, help="GPUs per actor (default 0)")
    group.add_argument(
        "--cpus-per-worker", type=float, help="CPUs per actor, also its torch threads (default 1)"
    )


def spec_from_args(args: argparse.Namespace) -> ExecutorSpec:
    """The ExecutorSpec of the parsed flags; a Ray flag given with --executor local is an error."""
    given = {
        flag: value
        for flag, value in (
            ("--ray-address", args.ray_address),
            ("--workers", args.workers),
            ("--gpus-per-worker", args.gpus_per_worker),
            ("--cpus-per-worker", args.cpus_per_worker),
        )
        if value is not None
    }
    if args.executor == "local" and given:
        raise ReasonerError(
            f"{', '.join(given)} only apply to Ray workers; add --executor ray (or drop them)"
        )
    fields = {
        "address": args.ray_address,
        "workers": args.workers,
        "gpus_per_worker": args.gpus_per_worker,
        "cpus_per_worker": args.cpus_per_worker,
    }
    return ExecutorSpec(kind=args.executor, **{k: v for k, v in fields.items() if v is not None})

"""Data-parallel training under torchrun: the process group, rank helpers and batch shards.

`torchrun --nproc_per_node N -m reasoner.cli train-prm ...` starts N processes with RANK,
WORLD_SIZE and LOCAL_RANK set. `join()` makes them one torch.distributed group (NCCL when CUDA
is available, each process on cuda:LOCAL_RANK; gloo on CPU). Every rank takes its contiguous
part of each global batch (`shard`) and divides its loss sum by the global count (`global_mean`),
so the DDP gradient, the mean of the ranks', is one process's at the same global batch. A process
started without torchrun is a world of one: no group is made and every helper is the identity.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from reasoner.types import ReasonerError

T = TypeVar("T")

# how long a rank waits for the others in one collective: rank 0 alone computes an evidence
# PRM's features and the validation metrics while the others wait at their next collective
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 writes every file)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one rank that writes checkpoints, logs and the final model."""
        return self.rank == 0

    def shard(self, items: list[T]) -> list[T]:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        per, extra = divmod(len(items), self.size)
        start = self.rank * per + min(self.rank, extra)
        return items[start : start + per + (1 if self.rank < extra else 0)]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over the ranks (a copy; `value` itself in a world of one)."""
        if self.size == 1:
            return value
        total = value.detach().clone().to(self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def global_mean(self, local_sum: torch.Tensor, local_count: int) -> torch.Tensor:
        """This rank's share of the global mean: its sum over the count summed over all ranks.
        Summed over the ranks it is the mean one process computes on the whole batch."""
        count = self.sum(torch.tensor(float(local_count), dtype=torch.float64, device=self.device))
        return local_sum / count.to(local_sum.dtype)

    def barrier(self) -> None:
        """Wait until every rank reaches this point (nothing in a world of one)."""
        if self.size > 1:
            dist.barrier()

    def wrap(self, model: Any) -> Any:
        """`model` as DDP wraps it (gradients averaged over the ranks); `model` in a world of one."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ReasonerError(f"environment variable {name} must be an integer, got {raw!r}") from err


def world_from_env() -> World:
    """The World torchrun's environment describes (RANK, WORLD_SIZE, LOCAL_RANK), unjoined."""
    size, rank, local = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ReasonerError(
            f"bad torchrun environment: RANK={rank} WORLD_SIZE={size} LOCAL_RANK={local}"
        )
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise ReasonerError(
                f"LOCAL_RANK {local} has no GPU: {torch.cuda.device_count()} visible; start at "
                f"most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return World(rank, size, local, device)


def join() -> World:
    """This process's World; under torchrun (WORLD_SIZE > 1) it joins the process group first
    (once per process: a second call reuses it)."""
    world = world_from_env()
    if world.size > 1 and not dist.is_initialized():
        if world.device.type == "cuda":
            torch.cuda.set_device(world.device)
        backend = "nccl" if world.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    return world


def leave(world: World) -> None:
    """Leave the process group `join` made (after a last barrier, so no rank exits early)."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def check_batch(world: World, batch_size: int) -> None:
    """Every rank needs at least one example of each global batch: refuse a smaller batch."""
    if batch_size < world.size:
        raise ReasonerError(
            f"train-prm: batch_size {batch_size} is smaller than the {world.size} processes; "
            f"batch_size is the global batch, split over the processes (each needs one example)"
        )

"""The bench's scale-out worker: one per Ray actor, owning the run's models for its life.

A shard is one batch of one grid cell (searched), one batch of one sampling run (replayed
cells), or the prompt check. Each worker builds the same Reasoner / sampling controller per cell
or source as the local loop does, so a shard's Solutions are the local run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.bench.grid import Cell
from benchmarks.bench.models import ModelCache
from benchmarks.bench.problems import check_prompts
from benchmarks.bench.replay import SampleRow, SampleStrategy, Source, sampling_controller
from benchmarks.bench.robust import solve_robustly
from benchmarks.config import BenchConfig
from reasoner.api import Reasoner
from reasoner.types import Problem, Solution


def cell_reasoner(cfg: BenchConfig, cell: Cell, models: ModelCache) -> Reasoner:
    """The Reasoner that searches one grid cell (what the local loop builds, too)."""
    return Reasoner(
        strategy=cell.strategy,
        budget=cell.budget,
        policy=models.policy(),
        prm=models.prm(cell.prm),
        seed=cell.seed,
        temperature=cfg.temperature,
        aggregation=cell.aggregation if cell.aggregation != "-" else "min",
        max_seconds=cfg.max_seconds_per_problem,
        max_nodes=cfg.max_nodes,
        strategy_options=cfg.strategy_options.get(cell.strategy, {}),
    )


@dataclass(frozen=True)
class CheckShard:
    problems: list[Problem]


@dataclass(frozen=True)
class SearchShard:
    cell: Cell
    batch: list[Problem]


@dataclass(frozen=True)
class SampleShard:
    source: Source
    budget: int
    batch: list[Problem]


class BenchWorker:
    """Runs bench shards with the models of one config (loaded on first use, kept)."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self.models = ModelCache(cfg)
        self._reasoners: dict[str, Reasoner] = {}
        self._controllers: dict[tuple[Source, int], Any] = {}

    def __call__(self, shard: CheckShard | SearchShard | SampleShard) -> Any:
        if isinstance(shard, CheckShard):
            return check_prompts(self.models.policy(), shard.problems)
        if isinstance(shard, SearchShard):
            return self.search(shard)
        return self.sample(shard)

    def search(self, shard: SearchShard) -> list[Solution]:
        key = shard.cell.key()
        if key not in self._reasoners:
            self._reasoners[key] = cell_reasoner(self.cfg, shard.cell, self.models)
        visible = [p.without_answer() for p in shard.batch]
        return solve_robustly(self._reasoners[key].solve_batch, visible, shard.cell.strategy)

    def sample(self, shard: SampleShard) -> list[SampleRow]:
        """The batch's sampling runs at `budget`, as the rows samples.jsonl stores."""
        policy, prm = self.models.policy(), self.models.prm(shard.source.prm)
        key = (shard.source, shard.budget)
        if key not in self._controllers:
            self._controllers[key] = sampling_controller(
                self.cfg, shard.source, shard.budget, policy, prm
            )
        controller, sampler = self._controllers[key], SampleStrategy()

        def solve_batch(batch: list[Problem]) -> list[Solution]:
            return controller.run([p.without_answer() for p in batch], sampler, shard.budget)

        sols = solve_robustly(solve_batch, shard.batch, sampler.name)
        return [
            SampleRow.of(p, shard.source, shard.budget, sol, policy, prm)
            for p, sol in zip(shard.batch, sols)
        ]


@dataclass(frozen=True)
class BenchJob:
    """The bench shards' job (picklable: the config; each worker loads the models itself)."""

    cfg: BenchConfig

    def make_worker(self) -> BenchWorker:
        return BenchWorker(self.cfg)

"""The grid: every distinct search config (cell) a bench config asks for, and which are replayed.

A cell is one (strategy, budget, PRM, aggregation, seed); its `key()` names it in result rows, so
a resumed run knows what is finished and a larger grid reuses the cells already run.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.config import BenchConfig
from reasoner.registry import get_strategy
from reasoner.search import PRMUse


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    strategy: str
    budget: int
    prm: str  # a PRM spec, or "none"
    aggregation: str  # "-" when there is no PRM
    seed: int

    def key(self) -> str:
        """The cell's name in result rows and on resume: its five fields joined by '|'."""
        return f"{self.strategy}|{self.budget}|{self.prm}|{self.aggregation}|{self.seed}"


def grid(cfg: BenchConfig) -> list[Cell]:
    """Every distinct config: budget-free strategies run once (as N=1); PRM-free ones only
    without a PRM; a strategy that can run with or without a PRM runs without one only when
    "none" is among the PRMs. Aggregations apply only to cells with a PRM ("-" otherwise)."""
    cells: list[Cell] = []
    for name in cfg.strategies:
        cls = get_strategy(name)
        budgets = cfg.strategy_budgets.get(name, cfg.budgets) if cls.uses_budget else [1]
        prms = [p for p in cfg.prms if p != "none"] if cls.prm is not PRMUse.UNUSED else ["none"]
        if cls.prm is PRMUse.OPTIONAL and "none" in cfg.prms:
            prms = prms + ["none"]
        for budget in budgets:
            for prm in prms:
                aggs = cfg.aggregations if prm != "none" else ["-"]
                for agg in aggs:
                    for seed in cfg.seeds:
                        cells.append(Cell(name, budget, prm, agg, seed))
    return cells


def is_replayed(cfg: BenchConfig, cell: Cell) -> bool:
    """Whether the cell is computed from a sampling run (`subsample = true` and a strategy that
    declares itself `replayable`) instead of searched directly."""
    return cfg.subsample and get_strategy(cell.strategy).replayable

"""The Strategy base class and the SearchContext a strategy runs in.

A strategy is a generator: it yields requests (Expand, Rollout, Score) and receives their results,
then returns a Pick. It never touches a model, so the controller can batch the requests of every
search running at once (all beams, all problems) into single model calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from reasoner.aggregation import aggregate
from reasoner.search.requests import Search
from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError


class PRMUse(str, Enum):
    """How a strategy uses a PRM: one fact, three values."""

    REQUIRED = "required"  # asks for PRM scores; refused without a PRM
    OPTIONAL = "optional"  # uses PRM scores when there is a PRM, runs without one (ctx.has_prm)
    UNUSED = "unused"  # never asks for scores: no PRM is loaded for it


@dataclass
class SearchContext:
    """What a strategy may know: the tree (problem without its answer), budget and settings."""

    tree: StepTree
    budget: int
    aggregation: str = "min"
    has_prm: bool = True
    max_depth: int = 12

    def chain_scores(self, node: Node) -> list[float]:
        return [n.prm_score if n.prm_score is not None else 0.0 for n in self.tree.path(node)]

    def chain_score(self, node: Node) -> float:
        return aggregate(self.chain_scores(node), self.aggregation)


class Strategy(ABC):
    """Base of every strategy; options come from `Reasoner(strategy_options={...})`.

    Class attributes declare what the engine and the benchmark runner may assume:
    - `prm`: a PRMUse (required, optional, unused).
    - `uses_budget`: False when the budget is ignored (benchmarks then run it once).
    - `replayable`: True when the result at budget n is a pure function of the first n of N
      complete samples drawn from the root (best-of-N family): a benchmark can then derive every
      budget from one sampling run at the largest one (`subsample = true`).
    """

    name: ClassVar[str] = ""
    prm: ClassVar[PRMUse] = PRMUse.REQUIRED
    uses_budget: ClassVar[bool] = True
    replayable: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {}  # option name -> default

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = sorted(self.options) or "none"
            raise ReasonerError(
                f"strategy {self.name!r}: unknown option(s) {unknown}; valid: {valid}"
            )
        self.config = {**self.options, **options}
        self.validate()

    def validate(self) -> None:
        """Raise ReasonerError for invalid option values (override in strategies)."""
        return None

    def check_budget(self, budget: int) -> None:
        """Raise ReasonerError if the options cannot work with this budget (e.g. width > N)."""
        return None

    @abstractmethod
    def search(self, ctx: SearchContext) -> Search:
        """Grow ctx.tree by yielding requests; return the Pick."""

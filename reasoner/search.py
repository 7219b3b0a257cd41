"""What a search strategy is written against: requests to the controller and a context.

A strategy is a generator: it yields requests (Expand, Rollout, Score) and receives their results,
then returns a Pick. It never touches a model, so the controller can batch the requests of every
search running at once (all beams, all problems) into single model calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reasoner.aggregation import aggregate
from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError


@dataclass
class Expand:
    """Sample k next steps under each node. Result: list (per node) of lists of new child nodes."""

    nodes: list[Node]
    k: int | list[int]
    temperature: float | None = None


@dataclass
class Rollout:
    """Sample k complete continuations under each node; the steps are added to the tree.

    Result: list (per node) of lists of the terminal leaf of each continuation.
    """

    nodes: list[Node]
    k: int | list[int]
    temperature: float | None = None


@dataclass
class Score:
    """PRM scores of the chains ending at these nodes. Result: list (per node) of step scores.

    Also sets `prm_score` on every node of each chain; scores of known prefixes come from cache.
    """

    nodes: list[Node]


Request = Expand | Rollout | Score


@dataclass
class Pick:
    """A strategy's final choice: the node ending the chosen chain (None if there is none)."""

    node: Node | None
    score: float | None = None
    reason: str = "finished"
    candidates: dict[str, float] = field(default_factory=dict)


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


Search = Generator[Request, Any, Pick]


class Strategy(ABC):
    """Base of every strategy; options come from `Reasoner(strategy=..., **options)`."""

    name: ClassVar[str] = ""
    uses_prm: ClassVar[bool] = True  # False: never asks for PRM scores (no PRM is loaded)
    needs_prm: ClassVar[bool] = True  # False: runs without a PRM too (e.g. best_of_n -> majority)
    uses_budget: ClassVar[bool] = True  # False: ignores the budget (benchmarks run it once)
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

"""The public entry point: `Reasoner(strategy="beam", budget=16).solve(problem)`."""

from __future__ import annotations

from typing import Any

from reasoner.aggregation import check_aggregation
from reasoner.controller import Controller, Limits
from reasoner.models.base import BACKENDS
from reasoner.models.loading import load_policy, load_prm
from reasoner.registry import get_strategy
from reasoner.search import PRMUse, Strategy
from reasoner.step_format import StepFormat
from reasoner.types import Problem, ReasonerError, Solution

__all__ = ["BACKENDS", "Reasoner", "load_policy", "load_prm"]


class Reasoner:
    """Solve math problems with a policy, a PRM and a search strategy.

    strategy: a registered name (`reasoner strategies` lists them) or a Strategy instance;
    strategy_options: that strategy's options, by name (only with a name).
    budget: the number of complete solutions' worth of policy generation the strategy may spend
    (best-of-N: N samples; beam: N beams; see the README for each strategy).
    """

    def __init__(
        self,
        strategy: str | Strategy = "best_of_n",
        budget: int = 16,
        policy: Any = "embedded",
        prm: Any = "embedded",
        backend: str = "hf",
        seed: int = 0,
        temperature: float = 1.0,
        aggregation: str = "min",
        step_format: StepFormat | str | dict | None = None,
        max_depth: int | None = None,
        max_nodes: int = 4096,
        max_seconds: float = 600.0,
        policy_options: dict[str, Any] | None = None,
        prm_options: dict[str, Any] | None = None,
        strategy_options: dict[str, Any] | None = None,
        **unknown: Any,
    ):
        if unknown:
            raise ReasonerError(
                f"Reasoner: unknown keyword(s) {sorted(unknown)}; strategy options go in "
                f"strategy_options={{...}} (`reasoner strategies` lists them)"
            )
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ReasonerError(f"budget must be an integer >= 1, got {budget!r}")
        if temperature < 0:
            raise ReasonerError(f"temperature must be >= 0, got {temperature}")
        self.strategy = _build_strategy(strategy, strategy_options or {})
        self.strategy_name = self.strategy.name
        self.strategy.check_budget(budget)  # fail before any model is loaded
        self.budget = budget
        self.seed = seed
        self.aggregation = check_aggregation(aggregation)
        self.policy = load_policy(policy, backend, step_format, **(policy_options or {}))
        uses = self.strategy.prm is not PRMUse.UNUSED
        self.prm = load_prm(prm, backend, step_format, **(prm_options or {})) if uses else None
        depth = max_depth or self.policy.step_format.max_steps
        self.controller = Controller(
            self.policy,
            self.prm,
            seed=seed,
            temperature=temperature,
            aggregation=self.aggregation,
            limits=Limits(max_nodes=max_nodes, max_depth=depth, max_seconds=max_seconds),
        )

    @staticmethod
    def _as_problem(problem: str | Problem, index: int = 0) -> Problem:
        if isinstance(problem, Problem):
            return problem
        if not isinstance(problem, str):
            raise ReasonerError(
                f"a problem must be a string or a Problem, got {type(problem).__name__}"
            )
        return Problem(text=problem, id=f"problem-{index}")

    def solve(self, problem: str | Problem) -> Solution:
        """Search for one problem's answer. The gold answer, if any, is never shown to the search."""
        return self.solve_batch([problem])[0]

    def solve_batch(self, problems: list[str | Problem]) -> list[Solution]:
        """Solve many problems at once; their searches advance in lockstep so model calls are large."""
        visible = [self._as_problem(p, i).without_answer() for i, p in enumerate(problems)]
        return self.controller.run(visible, self.strategy, self.budget)


def _build_strategy(strategy: str | Strategy, options: dict[str, Any]) -> Strategy:
    """A Strategy from a registered name and its options, or an instance as it is."""
    if isinstance(strategy, Strategy):
        if options:
            raise ReasonerError(
                "strategy_options apply to a strategy given by name; a Strategy instance "
                "carries its own options"
            )
        return strategy
    if not isinstance(strategy, str):
        raise ReasonerError(
            f"strategy must be a registered name or a Strategy instance, got "
            f"{type(strategy).__name__}"
        )
    return get_strategy(strategy)(**options)

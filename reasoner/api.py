"""The public entry point: `Reasoner(strategy="beam", budget=16).solve(problem)`."""

from __future__ import annotations

import hashlib
from typing import Any

from reasoner.aggregation import check_aggregation
from reasoner.controller import Controller, Limits, check_temperature
from reasoner.models.base import BACKENDS
from reasoner.models.loading import load_policy, load_prm
from reasoner.registry import get_strategy
from reasoner.search import PRMUse, Strategy
from reasoner.step_format import StepFormat
from reasoner.types import Problem, ReasonerError, Solution

__all__ = ["BACKENDS", "Reasoner", "as_problem", "load_policy", "load_prm"]


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
        limits = Limits(max_nodes=max_nodes, max_depth=max_depth or 1, max_seconds=max_seconds)
        check_temperature(temperature)
        self.strategy = _build_strategy(strategy, strategy_options or {})
        self.strategy_name = self.strategy.name
        self.strategy.check_budget(budget)  # fail before any model is loaded
        if self.strategy.uses_budget and budget > max_nodes:
            raise ReasonerError(
                f"budget N={budget} cannot fit in one search: strategy {self.strategy.name!r} "
                f"keeps at least N nodes in its tree and max_nodes is {max_nodes}; lower the "
                f"budget, or raise max_nodes if the machine can hold that many chains"
            )
        self.budget = budget
        self.seed = seed
        self.aggregation = check_aggregation(aggregation)
        self.policy = load_policy(policy, backend, step_format, **(policy_options or {}))
        uses = self.strategy.prm is not PRMUse.UNUSED
        self.prm = load_prm(prm, backend, step_format, **(prm_options or {})) if uses else None
        limits.max_depth = max_depth or self.policy.step_format.max_steps
        self.controller = Controller(
            self.policy,
            self.prm,
            seed=seed,
            temperature=temperature,
            aggregation=self.aggregation,
            limits=limits,
        )

    def solve(self, problem: str | Problem) -> Solution:
        """Search for one problem's answer. The gold answer, if any, is never shown to the search.

        A problem that cannot be searched (empty, not text, longer than the context) raises."""
        [solution] = self.solve_batch([problem])
        if solution.error is not None:
            raise ReasonerError(solution.error)
        return solution

    def solve_batch(self, problems: list[str | Problem]) -> list[Solution]:
        """Solve many problems at once; their searches advance in lockstep so model calls are large.

        One Solution per problem, in order; a problem that cannot be searched gets a Solution
        with `error` set (and reason "error") while the others are solved."""
        if isinstance(problems, (str, Problem)):
            raise ReasonerError("solve_batch takes a list of problems; use solve() for one")
        visible: list[Problem | None] = []
        failures: dict[int, Solution] = {}
        for i, problem in enumerate(problems):
            try:
                visible.append(as_problem(problem).without_answer())
            except ReasonerError as err:
                visible.append(None)
                failures[i] = Solution.failed(_given_id(problem), self.strategy.name, str(err))
        solved = iter(
            self.controller.run([p for p in visible if p is not None], self.strategy, self.budget)
        )
        return [failures[i] if p is None else next(solved) for i, p in enumerate(visible)]


def as_problem(problem: str | Problem) -> Problem:
    """A Problem from a Problem or a string; a string's id comes from its text (never from its
    position in a batch), so its seeds, and so its result, are the same alone or in any batch."""
    if isinstance(problem, Problem):
        return problem
    if not isinstance(problem, str):
        raise ReasonerError(
            f"a problem must be a string or a Problem, got {type(problem).__name__}"
        )
    digest = hashlib.sha256(problem.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return Problem(text=problem, id=f"problem-{digest}")


def _given_id(problem: Any) -> str:
    return str(getattr(problem, "id", "")) if isinstance(problem, Problem) else ""


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

"""The served models and engine, and the turning of a validated request into an engine Job.

Models load in a background thread, torch included (the server answers 503 "loading" meanwhile,
so a health check sees it alive); a request's search is checked here, before it is queued: unknown model or
strategy (404), bad option or aggregation (400), budget above --max-budget (413). A prompt
longer than the context (413) is found when the engine starts the search: only the engine
thread touches the models' tokenizers.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from reasoner.aggregation import check_aggregation
from reasoner.controller import Controller, Limits
from reasoner.registry import available_strategies
from reasoner.search import Strategy
from reasoner.serve.config import ServeConfig, build_strategy, check_search
from reasoner.serve.engine import Engine, Job
from reasoner.serve.protocol import APIError, strategy_options
from reasoner.types import Problem, ReasonerError


@dataclass
class Plan:
    """A request's search, checked: what the engine runs and how the answer is rendered."""

    model: str
    problem: Problem
    strategy: Strategy
    budget: int
    seed: int
    temperature: float | None
    aggregation: str


class Service:
    """The loaded models, the controller and the engine, shared by every request."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.presets = cfg.presets()
        self.policy: Any = None
        self.prm: Any = None
        self.engine: Engine | None = None
        self.load_error: str | None = None
        self.ready = threading.Event()
        self._loader: threading.Thread | None = None

    # ---- loading -----------------------------------------------------------------------------
    def load_in_background(self, on_error: Any = None) -> None:
        def load() -> None:
            try:
                self.load()
            except Exception as err:  # a bad checkpoint, a missing file, a backend failure
                self.load_error = str(err) if isinstance(err, ReasonerError) else repr(err)
                if on_error is not None:
                    on_error(self.load_error)
                return
            print("reasoner serve: models loaded, ready", file=sys.stderr, flush=True)

        self._loader = threading.Thread(target=load, name="reasoner-load", daemon=True)
        self._loader.start()

    def load(self) -> None:
        """Load the policy and PRM as Reasoner does, and start the engine."""
        # torch and transformers load here, in the loader thread: the server answers meanwhile
        from reasoner.models.loading import load_policy, load_prm

        cfg = self.cfg
        self.policy = load_policy(cfg.policy, cfg.backend, cfg.step_format)
        if cfg.prm is not None:
            self.prm = load_prm(cfg.prm, cfg.backend, cfg.step_format)
        limits = Limits(
            max_nodes=cfg.max_nodes,
            max_depth=self.policy.step_format.max_steps,
            max_seconds=cfg.max_seconds,
        )
        controller = Controller(
            self.policy,
            self.prm,
            seed=cfg.seed,
            temperature=cfg.temperature,
            aggregation=cfg.aggregation,
            limits=limits,
        )
        self.engine = Engine(controller, cfg.max_concurrent)
        self.engine.start()
        self.ready.set()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def check_ready(self) -> Engine:
        """The engine, or a 503 while models load (or after the engine stopped)."""
        if self.load_error is not None:
            raise APIError(503, f"the models failed to load: {self.load_error}", code="load_failed")
        if not self.ready.is_set() or self.engine is None:
            raise APIError(503, "the models are loading; retry shortly", code="loading")
        if self.engine.crashed is not None:
            raise APIError(503, "the search engine stopped (a bug; see the server log)")
        return self.engine

    # ---- requests ----------------------------------------------------------------------------
    def plan(self, request: Any, problem_field: str) -> Plan:
        """The checked search of a validated request (an APIError saying what is wrong)."""
        preset = self.presets.get(request.model)
        if preset is None:
            raise APIError(
                404,
                f"model {request.model!r} does not exist; models: {sorted(self.presets)}",
                "model",
                "model_not_found",
            )
        name = request.strategy or preset.strategy
        if name not in available_strategies():
            raise APIError(
                404,
                f"unknown strategy {name!r}; valid: {available_strategies()}",
                "strategy",
                "strategy_not_found",
            )
        options = dict(preset.options) if name == preset.strategy else {}
        options.update(strategy_options(request))
        budget = request.budget if request.budget is not None else preset.budget
        if budget > self.cfg.max_budget:
            raise APIError(
                413,
                f"budget {budget} is above this server's --max-budget {self.cfg.max_budget}",
                "budget",
                "budget_too_large",
            )
        try:
            strategy = build_strategy(name, options)
            check_search(strategy, budget, self.cfg)
            self.engine.controller.check_strategy(strategy)
        except ReasonerError as err:
            raise APIError(400, str(err), "strategy", "invalid_search") from None
        aggregation = request.aggregation or self.cfg.aggregation
        try:
            check_aggregation(aggregation)
        except ReasonerError as err:
            raise APIError(400, str(err), "aggregation") from None
        if request.token_cap() is not None and not hasattr(self.policy, "decode"):
            raise APIError(400, "max_tokens needs a policy that decodes token ids", "max_tokens")
        from reasoner.api import as_problem  # loaded with the models (check_ready passed)

        try:
            problem = as_problem(request.problem_text()).without_answer()
        except ReasonerError as err:
            raise APIError(400, f"the problem: {err}", problem_field) from None
        return Plan(
            model=request.model,
            problem=problem,
            strategy=strategy,
            budget=budget,
            seed=self.cfg.seed if request.seed is None else request.seed,
            temperature=request.temperature,
            aggregation=aggregation,
        )

    @staticmethod
    def job(plan: Plan) -> Job:
        return Job(
            problem=plan.problem,
            strategy=plan.strategy,
            budget=plan.budget,
            seed=plan.seed,
            temperature=plan.temperature,
            aggregation=plan.aggregation,
        )

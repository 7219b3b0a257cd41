"""The server's settings, its model presets, and the checks a request's search must pass.

Checked before any model loads (the CLI's one-line errors): the default strategy, its options
and budget, the aggregation and the temperature. `GET /v1/models` lists one id per preset: the
server's default (`model_name`) and every registered strategy the loaded models can run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasoner.aggregation import check_aggregation
from reasoner.controller import check_temperature
from reasoner.registry import available_strategies, get_strategy
from reasoner.search import PRMUse, Strategy
from reasoner.types import ReasonerError


@dataclass
class Preset:
    """A model id: a strategy with its options and default budget."""

    name: str
    strategy: str
    budget: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServeConfig:
    """Everything `reasoner serve` is started with."""

    strategy: str = "beam"
    budget: int = 16
    options: dict[str, Any] = field(default_factory=dict)
    policy: str = "embedded"
    prm: str | None = "embedded"
    backend: str = "hf"
    seed: int = 0
    temperature: float = 1.0
    aggregation: str = "min"
    step_format: str | None = None
    model_name: str = "reasoner"
    max_budget: int = 64
    max_concurrent: int = 64
    max_body_bytes: int = 1 << 20
    max_nodes: int = 4096
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if isinstance(self.prm, str) and self.prm.lower() == "none":
            self.prm = None
        for name in ("budget", "max_budget", "max_concurrent", "max_body_bytes", "max_nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ReasonerError(
                    f"serve: --{name.replace('_', '-')} must be >= 1, got {value!r}"
                )
        check_temperature(self.temperature)
        check_aggregation(self.aggregation)
        if self.budget > self.max_budget:
            raise ReasonerError(
                f"serve: --budget {self.budget} is above --max-budget {self.max_budget}"
            )
        if not self.model_name.strip():
            raise ReasonerError("serve: --model-name is empty")
        strategy = build_strategy(self.strategy, self.options)
        check_search(strategy, self.budget, self)
        if strategy.prm is PRMUse.REQUIRED and self.prm is None:
            raise ReasonerError(f"serve: strategy {self.strategy!r} needs a PRM; --prm is none")

    def presets(self) -> dict[str, Preset]:
        """Model id -> preset: the default one first, then one per runnable strategy."""
        out = {self.model_name: Preset(self.model_name, self.strategy, self.budget, self.options)}
        for name in available_strategies():
            if name in out:
                continue
            try:
                strategy = get_strategy(name)()
                check_search(strategy, self.budget, self)
            except ReasonerError:  # its defaults do not fit this budget: reachable by `strategy`
                continue
            if strategy.prm is PRMUse.REQUIRED and self.prm is None:
                continue
            out[name] = Preset(name, name, self.budget)
        return out


def build_strategy(name: str, options: dict[str, Any]) -> Strategy:
    """A registered strategy with its options (an unknown name or option says what is valid)."""
    return get_strategy(name)(**options)


def check_search(strategy: Strategy, budget: int, cfg: ServeConfig) -> None:
    """The checks Reasoner makes before a search: the strategy's own, and N nodes must fit."""
    strategy.check_budget(budget)
    if strategy.uses_budget and budget > cfg.max_nodes:
        raise ReasonerError(
            f"budget N={budget} cannot fit in one search: strategy {strategy.name!r} keeps at "
            f"least N nodes in its tree and max_nodes is {cfg.max_nodes}"
        )

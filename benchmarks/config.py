"""Bench configuration: a suite TOML file and/or command-line flags, validated with clear errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from reasoner.types import ReasonerError

SUITES = ("arith", "gsm8k", "math500", "math")


@dataclass
class BenchConfig:
    """One benchmark run: a dataset, the grid (strategies x budgets x PRMs x aggregations x seeds)."""

    suite: str = "arith"
    split: str = "test"
    data_dir: str | None = None
    limit: int | None = None  # first `limit` problems of the split (declared in the report)
    offset: int = 0
    policy: str = "embedded"
    prms: list[str] = field(default_factory=lambda: ["embedded"])  # "none" = no PRM
    backend: str = "hf"
    step_format: str | None = None
    strategies: list[str] = field(default_factory=lambda: ["greedy", "majority", "best_of_n"])
    budgets: list[int] = field(default_factory=lambda: [4, 16])
    aggregations: list[str] = field(default_factory=lambda: ["min"])
    seeds: list[int] = field(default_factory=lambda: [0])
    temperature: float = 1.0
    batch_size: int = 16  # problems per solve_batch call
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    save_trees: bool = False
    out_dir: str = "runs/bench"
    max_seconds_per_problem: float = 600.0

    def validate(self) -> BenchConfig:
        if self.suite not in SUITES:
            raise ReasonerError(f"unknown suite {self.suite!r}; valid: {', '.join(SUITES)}")
        if not self.strategies:
            raise ReasonerError("no strategies given")
        from reasoner.registry import available_strategies

        for s in self.strategies:
            if s not in available_strategies():
                raise ReasonerError(
                    f"unknown strategy {s!r}; available: {', '.join(available_strategies())}"
                )
        for b in self.budgets:
            if not isinstance(b, int) or b < 1:
                raise ReasonerError(f"budgets must be integers >= 1, got {b!r}")
        from reasoner.aggregation import check_aggregation

        for a in self.aggregations:
            check_aggregation(a)
        if self.limit is not None and self.limit < 1:
            raise ReasonerError(f"limit must be >= 1, got {self.limit}")
        return self

    def grid_key(self) -> dict[str, Any]:
        """The fields that make two runs comparable (resume refuses a run whose key differs)."""
        keys = (
            "suite",
            "split",
            "limit",
            "offset",
            "policy",
            "backend",
            "step_format",
            "temperature",
        )
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> BenchConfig:
        path = Path(path)
        if not path.exists():
            raise ReasonerError(f"suite file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ReasonerError(f"{path}: invalid TOML: {err}") from err
        return cls.from_dict(data, source=str(path), overrides=overrides)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "config", overrides: dict[str, Any] | None = None
    ) -> BenchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReasonerError(f"{source}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
        merged = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        return cls(**merged).validate()

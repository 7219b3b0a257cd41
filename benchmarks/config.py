"""Bench configuration: a suite TOML file and/or command-line flags, validated with clear errors.

A suite is a TOML file of `BenchConfig` fields (see `benchmarks/suites/*.toml`). It is found by
path (`reasoner bench path/to/suite.toml`) or by bare name (`reasoner bench arith`), which looks
in the `benchmarks/suites` package data, so it works from an installed package too. Flags
override the file. Keys and types are checked by the project's one config loader
(reasoner.config_io); `BenchConfig.validate` checks the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from reasoner.aggregation import check_aggregation
from reasoner.config_io import SET_NONE, Config, check_min, did_you_mean, read_toml
from reasoner.registry import available_strategies, get_strategy
from reasoner.search import PRMUse
from reasoner.step_format import get_step_format
from reasoner.types import ReasonerError

DATASETS = ("arith", "gsm8k", "math500", "math")  # what `dataset` may name
UNSET = SET_NONE  # the former name of an override that sets None (kept for callers)
DEFAULT_SUITE = "arith"

# Fields whose change makes existing result rows mean something else: an output directory whose
# run.json differs in any of these is refused (see benchmarks.bench.resume.check_compatible). Grid lists
# (strategies, budgets, prms, aggregations, seeds) and the problem range are not here: rows are
# keyed per (problem, cell), so a rerun with a larger grid or range reuses what is finished.
COMPAT_FIELDS = (
    "dataset",
    "split",
    "policy",
    "policy_options",
    "backend",
    "step_format",
    "prm_step_format",
    "prm_options",
    "temperature",
    "strategy_options",
    "max_seconds_per_problem",
    "max_nodes",
    "subsample",
)


@dataclass
class BenchConfig(Config):
    """One benchmark run: a dataset, the grid (strategies x budgets x PRMs x aggregations x seeds)."""

    # the suite's name (file stem by default); used in reports and the default out dir
    name: str = ""
    description: str = ""  # free text, copied into summary.md
    dataset: str = "arith"  # arith (embedded), gsm8k, math500, math
    split: str = "test"
    data_dir: str | None = None  # else $REASONER_DATA (arith needs none)
    # first `limit` problems of the split after `offset` (declared in the report)
    limit: int | None = None
    offset: int = 0
    policy: str = "embedded"  # "embedded" or a local checkpoint directory
    policy_options: dict[str, Any] = field(default_factory=dict)  # e.g. dtype, trust_remote_code
    prms: list[str] = field(default_factory=lambda: ["embedded"])  # "none" = no PRM
    prm_options: dict[str, Any] = field(default_factory=dict)
    backend: str = "hf"
    step_format: str | dict[str, Any] | None = None  # policy step format (preset, dict or .toml)
    prm_step_format: str | dict[str, Any] | None = None  # PRM step format; default: step_format
    strategies: list[str] = field(default_factory=lambda: ["greedy", "majority", "best_of_n"])
    budgets: list[int] = field(default_factory=lambda: [4, 16])
    strategy_budgets: dict[str, list[int]] = field(default_factory=dict)  # per-strategy budgets
    aggregations: list[str] = field(default_factory=lambda: ["min"])
    seeds: list[int] = field(default_factory=lambda: [0])
    temperature: float = 1.0
    subsample: bool = False  # best-of-N family curves from one run at the largest budget
    batch_size: int = 16  # problems per solve_batch call
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    save_trees: bool = False
    out_dir: str | None = None  # default: runs/bench/<name>
    max_seconds_per_problem: float = 600.0
    max_nodes: int = 4096
    retry_errors: bool = False  # on resume, rerun rows that recorded an error

    # ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Value checks (types are checked by the loader): known dataset, strategies, options and
        aggregations, budgets >= 1, no duplicate grid entries; fills the default name and out_dir."""
        if self.dataset not in DATASETS:
            raise ReasonerError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if not self.name:
            self.name = self.dataset
        if not self.out_dir:
            self.out_dir = str(Path("runs") / "bench" / self.name)
        for key in ("strategies", "budgets", "prms", "aggregations", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ReasonerError(f"{key} is empty; give at least one")
            if len(set(map(str, values))) != len(values):
                raise ReasonerError(f"{key} has duplicates: {values}")
        real_prms = [p for p in self.prms if p != "none"]
        for s in self.strategies:
            cls = get_strategy(s)  # the registry's error names the available strategies
            if cls.prm is PRMUse.REQUIRED and not real_prms:  # its cells would silently vanish
                raise ReasonerError(
                    f"strategy {s!r} needs a PRM, and prms is {self.prms}: add one (e.g. "
                    "'embedded') or drop the strategy"
                )
        for s, opts in self.strategy_options.items():
            if s not in available_strategies():
                raise ReasonerError(
                    f"strategy_options names unknown strategy {s!r}; available: "
                    f"{', '.join(available_strategies())}"
                )
            if s in self.strategies:
                get_strategy(s)(**opts)  # unknown or invalid options fail now, not mid-run
        for s, budgets in self.strategy_budgets.items():
            if s not in self.strategies:
                raise ReasonerError(
                    f"strategy_budgets names {s!r}, which is not among the strategies "
                    f"{self.strategies}"
                )
            if not budgets:
                raise ReasonerError(f"strategy_budgets.{s} must be a non-empty list of integers")
        for b in [*self.budgets, *(b for v in self.strategy_budgets.values() for b in v)]:
            if b < 1:
                raise ReasonerError(f"budgets must be integers >= 1, got {b!r}")
        for a in self.aggregations:
            check_aggregation(a)
        if self.limit is not None and self.limit < 1:
            raise ReasonerError(f"limit must be >= 1, got {self.limit}")
        if self.offset < 0:
            raise ReasonerError(f"offset must be >= 0, got {self.offset}")
        if self.batch_size < 1:
            raise ReasonerError(f"batch_size must be >= 1, got {self.batch_size}")
        check_min(self, "temperature", 0.0)
        if self.backend not in ("hf", "vllm"):
            raise ReasonerError(f"unknown backend {self.backend!r}; valid: hf, vllm")
        if self.max_nodes < 1 or self.max_seconds_per_problem <= 0:
            raise ReasonerError("max_nodes and max_seconds_per_problem must be positive")
        for key in ("step_format", "prm_step_format"):
            if getattr(self, key) is not None:
                try:
                    get_step_format(getattr(self, key))
                except ReasonerError as err:
                    raise ReasonerError(f"{key}: {err}") from err

    # ------------------------------------------------------------------------------------------
    def compat_key(self) -> dict[str, Any]:
        """The fields that make result rows comparable (resume refuses a run whose key differs)."""
        return {k: getattr(self, k) for k in COMPAT_FIELDS}

    @classmethod
    def from_toml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> BenchConfig:
        """A suite file's config (its name defaults to the file's stem), with overrides."""
        data = read_toml(path, what="suite file")
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data, source=str(path), overrides=overrides)


# ----------------------------------------------------------------------------------------------
# Finding suites
# ----------------------------------------------------------------------------------------------


def suites_dir() -> Path:
    """The directory of the shipped suite files (package data of `benchmarks`)."""
    return Path(str(resources.files("benchmarks") / "suites"))


def available_suites() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.toml"))


def find_suite(spec: str | Path) -> Path:
    """A suite file from a path or a bare name (looked up in benchmarks/suites)."""
    text = str(spec)
    looks_like_path = text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ReasonerError(
                f"suite file {path} does not exist; shipped suites: {', '.join(available_suites())}"
            )
        return path
    path = suites_dir() / f"{text}.toml"
    if not path.is_file():
        hint = did_you_mean(text, available_suites())
        raise ReasonerError(
            f"unknown suite {text!r}{hint}; available suites: {', '.join(available_suites())} "
            f"(or give the path of a .toml file)"
        )
    return path


def load_config(suite: str | Path | None, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """The config of a suite (path or bare name; the default suite when None), with overrides."""
    return BenchConfig.from_toml(find_suite(suite or DEFAULT_SUITE), overrides)

"""What `reasoner replay` reads and plans: the source bench run (run.json, rows, sampling runs;
never written), the replay's cells, and its checked options and PRMs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench.grid import Cell
from benchmarks.bench.metadata import _versions
from benchmarks.bench.replay import SampleRow, Source
from benchmarks.bench.resume import (
    RESULTS,
    RUN_JSON,
    SAMPLES,
    latest_rows,
    read_results,
    read_run_json,
    read_samples,
)
from benchmarks.bench.rows import ResultRow
from benchmarks.config import BenchConfig
from reasoner.aggregation import check_aggregation
from reasoner.api import load_prm
from reasoner.models.base import ProcessRewardModel
from reasoner.registry import get_strategy
from reasoner.tree import StepTree
from reasoner.types import ReasonerError


@dataclass
class SourceRun:
    """A bench run as replay reads it (never writes it)."""

    run_dir: Path
    meta: dict[str, Any]
    cfg: BenchConfig
    rows: dict[tuple[str, str], ResultRow]  # (problem id, cell key) -> latest row
    samples: dict[tuple[str, Source, int], SampleRow]  # (problem id, source, N) -> sampling run

    @property
    def version(self) -> str:
        return str((self.meta.get("versions") or {}).get("reasoner", "unknown"))

    def cells(self) -> list[Cell]:
        return list(dict.fromkeys(r.cell for r in self.rows.values()))


def not_replayable(run_dir: Path, meta: dict[str, Any], why: str) -> ReasonerError:
    there = (meta.get("versions") or {}).get("reasoner", "unknown")
    here = _versions().get("reasoner", "unknown")
    return ReasonerError(
        f"{run_dir} is not a run this version can replay (written by reasoner {there}, this is "
        f"{here}): {why}"
    )


def load_source(run_dir: str | Path) -> SourceRun:
    """The run in `run_dir`: run.json, its config and rows, its sampling runs; one clear error
    for a directory that is not a bench run or was written by an incompatible version."""
    d = Path(run_dir)
    if not (d / RUN_JSON).is_file():
        what = "does not exist" if not d.exists() else f"holds no {RUN_JSON}"
        raise ReasonerError(f"replay: {d} is not a bench run directory (it {what})")
    meta = read_run_json(d / RUN_JSON)
    if "config" not in meta:
        raise not_replayable(d, meta, f"{RUN_JSON} has no config")
    try:
        cfg = BenchConfig.from_dict(meta["config"], source=str(d / RUN_JSON))
        rows = latest_rows(read_results(d / RESULTS))
        samples = {(s.problem_id, s.source, s.budget): s for s in read_samples(d / SAMPLES)}
    except ReasonerError as err:
        raise not_replayable(d, meta, str(err)) from None
    if not rows:
        raise ReasonerError(f"replay: {d / RESULTS} holds no result rows; nothing to replay")
    return SourceRun(d, meta, cfg, rows, samples)


def tree_of(data: dict[str, Any], where: str, source: SourceRun) -> StepTree:
    """A saved tree, or one clear error when it is not this version's tree format."""
    try:
        return StepTree.from_dict(data)
    except (KeyError, TypeError) as err:
        raise not_replayable(
            source.run_dir, source.meta, f"{where}: the saved tree does not load ({err})"
        ) from None


@dataclass(frozen=True)
class Job:
    """One replayed cell: the target cell, the source cell its rows come from, and the kind."""

    target: Cell
    source: Cell
    kind: str


def plan(cells: list[Cell], prms: list[str] | None, aggregations: list[str] | None) -> list[Job]:
    """The replay's cells: every source cell with a PRM under each of `prms` x `aggregations`
    (default: its own), PRM-free cells as they are. When several source cells give one target
    (e.g. min and last rows replayed under mean), the one with the target's PRM and aggregation
    is used, else the first with its PRM, else the first."""
    options: dict[str, list[Job]] = {}
    for s in cells:
        if s.prm == "none":
            jobs = [Job(s, s, "prm-free")]
        else:
            kind = "exact" if get_strategy(s.strategy).replayable else "tree-pick"
            jobs = [
                Job(Cell(s.strategy, s.budget, p, a, s.seed), s, kind)
                for p in prms or [s.prm]
                for a in aggregations or [s.aggregation]
            ]
        for j in jobs:
            options.setdefault(j.target.key(), []).append(j)
    return [
        min(
            js,
            key=lambda j: (
                j.source.prm != j.target.prm,
                j.source.aggregation != j.target.aggregation,
            ),
        )
        for js in options.values()
    ]


def check_options(prms: list[str] | None, aggregations: list[str] | None) -> None:
    """Flag values, checked before anything loads."""
    for a in aggregations or []:
        try:
            check_aggregation(a)
        except ReasonerError as err:
            raise ReasonerError(f"replay --aggregations: {err}") from None
    if aggregations is not None and not aggregations:
        raise ReasonerError("replay --aggregations is empty; give at least one")
    if prms is not None:
        if not prms:
            raise ReasonerError("replay --prms is empty; give at least one PRM")
        if "none" in prms:
            raise ReasonerError(
                "replay --prms: 'none' is no PRM to re-score with (the run's PRM-free rows are "
                "replayed as they are); give PRM specs"
            )
        if len(set(prms)) != len(prms):
            raise ReasonerError(f"replay --prms has duplicates: {prms}")


def load_replay_prm(spec: str, cfg: BenchConfig) -> ProcessRewardModel:
    """A PRM to re-score with, as the source run would have loaded it; one clear error if it
    does not load."""
    try:
        prm = load_prm(spec, cfg.backend, cfg.prm_step_format or cfg.step_format, **cfg.prm_options)
    except ReasonerError as err:
        raise ReasonerError(f"replay --prms {spec!r} does not load: {err}") from None
    except Exception as err:  # a broken checkpoint, a plugin that raises: one line, not a trace
        raise ReasonerError(
            f"replay --prms {spec!r} does not load: {type(err).__name__}: {err}"
        ) from None
    return prm

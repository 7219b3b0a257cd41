"""`reasoner replay`: a bench run's saved trees re-scored with other PRMs and re-selected with
other aggregations, generating nothing (no policy is loaded).

What each replayed row can claim is its `replay["kind"]`:
- "exact": a best-of-N-family strategy (`replayable`) re-run on the run's own rollouts and their
  (new) scores, with the stand-in policy and PRM of `replay` (a subsampled row from its sampling
  run in samples.jsonl): what a real run with that PRM and aggregation picks.
- "tree-pick": a tree search (beam, dvts, mcts, ...): the finished chains of its saved tree are
  re-picked under the new scores (best aggregated score; a PRM-weighted vote for a strategy whose
  final pick is a vote). Its search decisions used the source PRM's scores and are NOT replayed;
  even under the source's own PRM and aggregation it can differ from the search's own pick.
- "prm-free" (greedy, majority, ...) and "source-error" rows are copied: nothing in them depends
  on a PRM.
Costs: the source row's policy tokens and seconds (nothing is regenerated or re-timed); under a
new PRM the row's PRM tokens and FLOPs are those of re-scoring its tree with that PRM. Every row
carries `replayed_from` and `replay_policy_tokens` (0). The source directory is only read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.bench.grid import Cell
from benchmarks.bench.lock import locked_out_dir
from benchmarks.bench.metadata import _versions, git_commit, model_fingerprint
from benchmarks.bench.replay import SampleRow, replay, source_of
from benchmarks.bench.rescore import REPLAY_RECORD, chains_to_score, rescore_tree
from benchmarks.bench.rescore_pick import pick_solution, repick, rollout_ends
from benchmarks.bench.rescore_source import (
    Job,
    SourceRun,
    check_options,
    load_replay_prm,
    load_source,
    not_replayable,
    plan,
    tree_of,
)
from benchmarks.bench.resume import (
    RESULTS,
    RUN_JSON,
    SAMPLES,
    finished_keys,
    latest_rows,
    read_results,
    read_run_json,
    write_run_json,
)
from benchmarks.bench.rows import ResultRow, grade_solution
from benchmarks.config import BenchConfig
from benchmarks.report import write_reports
from reasoner.datasets import file_sha256
from reasoner.jsonl import append_jsonl, repair_tail
from reasoner.models.base import ProcessRewardModel
from reasoner.step_format import StepFormat
from reasoner.types import Problem, ReasonerError, Stats

KINDS = {
    "exact": "best-of-N family: the strategy re-run on the saved rollouts and their scores "
    "(what a real run picks)",
    "tree-pick": "tree search: its saved tree's finished chains re-picked under the scores; the "
    "search's own decisions used the source PRM and are not replayed",
    "prm-free": "no PRM: copied from the source run",
    "source-error": "the source row recorded an error: copied",
}
COST_KEYS = (
    "policy_tokens",
    "policy_new_tokens",
    "prm_tokens",
    "flops",
    "seconds",
    "wall_seconds",
    "nodes",
    "distinct_tokens",
)


class Replayer:
    """Computes the replayed rows of one source run."""

    def __init__(self, source: SourceRun, jobs: list[Job], save_trees: bool):
        self.source = source
        self.cfg = source.cfg
        self.jobs = jobs
        self.save_trees = save_trees
        self.prms: dict[str, ProcessRewardModel] = {}
        self._cache: dict[tuple[str, str, str], tuple[dict[str, Any], int, float]] = {}
        self.policy_tokens = 0  # the replay has no policy: nothing can add to this
        self._cells = source.cells()  # the source's grid (which sampling run a cell reads)

    # -- what must hold before any row is written ----------------------------------------------
    def check(self) -> None:
        """Every tree a job needs is saved, and every PRM it re-scores with loads."""
        missing, seen = [], set()
        rescored = {j.source.key() for j in self.jobs if j.target.prm != j.source.prm}
        for job in self.jobs:
            if job.kind == "prm-free" or job.source.key() in seen:
                continue
            seen.add(job.source.key())
            # a direct best-of-N replay, and any re-scoring, read the tree's replay record
            needs_record = job.kind == "exact" or job.source.key() in rescored
            for (pid, key), row in self.source.rows.items():
                if key != job.source.key() or row.error:
                    continue
                tree = row.tree
                if row.subsampled_from:
                    sample = self._sample(pid, job.source, row)
                    tree = sample.tree if sample is not None else None
                if not tree:
                    sampled = f" (its sampling run in {SAMPLES})" if row.subsampled_from else ""
                    missing.append(f"{pid} {key}{sampled}")
                else:  # a tree of another version's format is refused now, not mid-run
                    tree_of(tree, f"{pid} {key}", self.source)
                    if needs_record and not row.subsampled_from:
                        self._record(pid, job, tree)
        if missing:
            raise ReasonerError(
                f"replay: {len(missing)} rows of {self.source.run_dir} have no saved tree (e.g. "
                f"{missing[0]}); the run was made without --save-trees. Rerun it with `reasoner "
                f"bench ... --save-trees --out NEW_DIR`, then replay NEW_DIR"
            )
        for job in self.jobs:
            if job.kind != "prm-free" and job.target.prm != job.source.prm:
                if job.target.prm not in self.prms:
                    self.prms[job.target.prm] = load_replay_prm(job.target.prm, self.cfg)

    def _sample(self, pid: str, cell: Cell, row: ResultRow) -> SampleRow | None:
        src = source_of(self.cfg, cell, self._cells)
        return self.source.samples.get((pid, src, row.subsampled_from or 0))

    # -- one row -------------------------------------------------------------------------------
    def row(self, job: Job, pid: str) -> ResultRow:
        src = self.source.rows[(pid, job.source.key())]
        if src.error or job.kind == "prm-free":
            out = dataclasses.replace(src, tree=src.tree if self.save_trees else None)
            kind = "source-error" if src.error else "prm-free"
            return self._mark(out, job, kind, 0, 0.0)
        if job.kind == "exact":
            made = self._exact(job, pid, src)
            if made is not None:
                return made
        return self._tree_pick(job, pid, src)

    def _mark(self, row: ResultRow, job: Job, kind: str, tokens: int, seconds: float) -> ResultRow:
        row.replayed_from = str(self.source.run_dir.resolve())
        row.replay_policy_tokens = self.policy_tokens
        row.replay = {
            "kind": kind,
            "source_cell": job.source.key(),
            "scores": "rescored" if job.target.prm != job.source.prm else "source",
            # the PRM tokens and seconds re-scoring this row's tree took (shared by every row
            # replayed from the same tree; 0 when the source's scores are used)
            "rescore_prm_tokens": tokens,
            "rescore_seconds": round(seconds, 6),
        }
        return row

    def _scored(
        self, pid: str, tree_id: str, tree: dict[str, Any], prm_spec: str, ends: Any
    ) -> tuple[dict[str, Any], int, float]:
        """The tree re-scored by `prm_spec` (cached per problem and tree): dict, tokens, s."""
        key = (pid, tree_id, prm_spec)
        if key not in self._cache:
            t = tree_of(tree, f"{pid} {tree_id}", self.source)
            tokens, seconds = rescore_tree(t, self.prms[prm_spec], ends(t))
            self._cache[key] = (t.to_dict() | _extra(tree), tokens, seconds)
        return self._cache[key]

    def forget(self) -> None:
        """Drop the cached re-scored trees (one problem's are reused; call between problems)."""
        self._cache.clear()

    def _exact(self, job: Job, pid: str, src: ResultRow) -> ResultRow | None:
        """A best-of-N-family row re-run on its rollouts; None when the rollouts are not all
        there (a cap stopped the source search): that row is tree-picked instead."""
        t = job.target
        if src.subsampled_from:
            sample = self._sample(pid, job.source, src)
            assert sample is not None  # checked
            tree, tree_id = copy.deepcopy(sample.tree), f"sample|{sample.prm}|{sample.seed}"
            record = {
                "step_format": sample.step_format,
                "policy_parameters": sample.policy_parameters,
                "prm_parameters": sample.prm_parameters,
            }
            scored_by, budget, prm_tokens = sample.prm, sample.budget, sample.stats.prm_tokens
            rollouts = tree["nodes"][0].get("meta", {}).get("rollouts", [])
        else:
            tree, tree_id = copy.deepcopy(src.tree), f"row|{job.source.key()}"
            record = self._record(pid, job, tree)
            scored_by, budget, prm_tokens = job.source.prm, t.budget, src.prm_tokens
            rollouts = rollout_ends(tree, t.budget)
            tree["nodes"][0].setdefault("meta", {})["rollouts"] = rollouts
        if len(rollouts) < budget or any(i >= len(tree["nodes"]) for i in rollouts):
            return None
        tokens, seconds, prm_parameters = 0, 0.0, record["prm_parameters"]
        if t.prm != scored_by:
            tree, tokens, seconds = self._scored(
                pid, tree_id, tree, t.prm, lambda tr: chains_to_score(tr, rollouts)
            )
            prm_tokens, prm_parameters = tokens, self.prms[t.prm].num_parameters
        sample_row = SampleRow(
            problem_id=pid,
            prm=t.prm,
            seed=t.seed,
            budget=budget,
            error=None,
            reason="samples",
            stats=Stats(prm_tokens=prm_tokens),
            policy_parameters=record["policy_parameters"],
            prm_parameters=prm_parameters,
            step_format=record["step_format"],
            tree=tree,
        )
        problem = Problem(text=tree["problem_text"], id=pid, answer=src.gold)
        sol = replay(problem, t, sample_row, self.cfg)
        row = grade_solution(
            problem, t, sol, src.dataset, self.save_trees, subsampled_from=src.subsampled_from
        )
        self._costs(row, src, t.prm != job.source.prm, record, prm_parameters)
        return self._mark(row, job, "exact", tokens, seconds)

    def _record(self, pid: str, job: Job, tree: dict[str, Any]) -> dict[str, Any]:
        record = tree.get(REPLAY_RECORD)
        if not isinstance(record, dict) or not {"step_format", "policy_parameters"} <= set(record):
            raise not_replayable(
                self.source.run_dir,
                self.source.meta,
                f"{pid} {job.source.key()}: its saved tree lacks the replay record (step "
                f"format, parameter counts) that `bench --save-trees` now stores; rerun the "
                f"bench with --save-trees into a new --out",
            )
        return record

    def _costs(
        self, row: ResultRow, src: ResultRow, rescored: bool, record: dict, prm_parameters: int
    ) -> None:
        """The source row's costs; under a new PRM its PRM tokens (already on `row`, from the
        re-scoring) and the FLOPs they make."""
        prm_tokens = row.prm_tokens
        for key in COST_KEYS:
            setattr(row, key, getattr(src, key))
        if rescored:
            row.prm_tokens = prm_tokens
            row.flops = 2.0 * record["policy_parameters"] * src.policy_tokens
            row.flops += 2.0 * prm_parameters * prm_tokens

    def _tree_pick(self, job: Job, pid: str, src: ResultRow) -> ResultRow:
        """A row re-picked among its saved tree's finished chains (see the module docstring)."""
        t = job.target
        tree_dict, record = src.tree, (src.tree or {}).get(REPLAY_RECORD)
        if tree_dict is None:  # a subsampled best-of-N row whose sampling run a cap stopped
            sample = self._sample(pid, job.source, src)
            if sample is None or sample.tree is None:
                raise ReasonerError(f"replay: {pid} {job.source.key()} has no saved tree")
            tree_dict = sample.tree
            record = {
                "step_format": sample.step_format,
                "policy_parameters": sample.policy_parameters,
                "prm_parameters": sample.prm_parameters,
            }
        rescored = t.prm != job.source.prm
        tokens, seconds, prm_parameters = 0, 0.0, 0
        if rescored:
            record = record or self._record(pid, job, tree_dict)  # FLOPs need the counts
            tree_dict, tokens, seconds = self._scored(
                pid, f"row|{job.source.key()}", tree_dict, t.prm, chains_to_score
            )
            prm_parameters = self.prms[t.prm].num_parameters
        tree = tree_of(tree_dict, f"{pid} {job.source.key()}", self.source)
        fmt = StepFormat.from_dict(record["step_format"]) if record else None
        pick = repick(tree, t, self.cfg)
        problem = Problem(text=tree.problem_text, id=pid, answer=src.gold)
        sol = pick_solution(tree, pick, fmt, t.strategy, pid)
        row = grade_solution(problem, t, sol, src.dataset, self.save_trees, src.subsampled_from)
        if row.tree is not None:
            row.tree |= _extra(tree_dict)
        row.prm_tokens = tokens
        self._costs(row, src, rescored, record or {}, prm_parameters)
        return self._mark(row, job, "tree-pick", tokens, seconds)


def _extra(tree: dict[str, Any]) -> dict[str, Any]:
    """A saved tree dict's keys beyond StepTree's own (the replay record), kept on copies."""
    return {k: v for k, v in tree.items() if k == REPLAY_RECORD}


# ----------------------------------------------------------------------------------------------


def default_out(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}-replay"


def _check_out(out: Path, source: SourceRun, sha: dict[str, str]) -> None:
    """The output directory is outside the source run, and any replay already in it is of the
    same source (so a rerun resumes it)."""
    src, dst = source.run_dir.resolve(), out.resolve()
    if dst == src or dst.is_relative_to(src):
        raise ReasonerError(
            f"replay --out {out} is inside the source run {source.run_dir}; replay never writes "
            f"there: give another --out (default {default_out(source.run_dir)})"
        )
    if (out / RUN_JSON).exists():
        old = read_run_json(out / RUN_JSON).get("replay")
        if not isinstance(old, dict):
            raise ReasonerError(f"{out} holds a bench run, not a replay; give another --out")
        if old.get("source") != str(src) or old.get("source_sha256") != sha:
            raise ReasonerError(
                f"{out} holds a replay of another run ({old.get('source')}) or of an earlier "
                f"state of this one; give another --out, or delete {out} to start over"
            )
    elif (out / RESULTS).exists():
        raise ReasonerError(f"{out} holds result files but no {RUN_JSON}; give another --out")


def _replay_cfg(source: SourceRun, jobs: list[Job], out: Path) -> BenchConfig:
    cfg = source.cfg
    prms = list(dict.fromkeys(j.target.prm for j in jobs))
    aggs = [a for a in dict.fromkeys(j.target.aggregation for j in jobs) if a != "-"]
    kinds: dict[str, str] = {}
    for j in jobs:
        kinds.setdefault(j.target.strategy, j.kind)
    listed = "; ".join(f"{s}: {k}" for s, k in kinds.items())
    description = (
        f"Replay of `{source.run_dir}` (reasoner replay: saved trees re-scored and re-selected, "
        f"no policy tokens spent). Rows by kind: {listed}. exact = {KINDS['exact']}; tree-pick "
        f"= {KINDS['tree-pick']}. Policy tokens and seconds are the source run's; under a new "
        f"PRM, PRM tokens and FLOPs are its re-scoring's."
    )
    data = {
        **cfg.to_dict(),
        "name": f"{cfg.name}-replay",
        "description": description,
        "prms": prms,
        "aggregations": aggs or list(cfg.aggregations),
        "out_dir": str(out),
    }
    return BenchConfig.from_dict(data, source="replay")


def replay_run(
    run_dir: str | Path,
    prms: list[str] | None = None,
    aggregations: list[str] | None = None,
    out: str | Path | None = None,
    save_trees: bool = False,
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay a bench run (see the module docstring); returns the summary dict and writes
    results.jsonl, summary.json, summary.md and accuracy.png into `out`."""
    check_options(prms, aggregations)
    source = load_source(run_dir)
    out_dir = Path(out) if out else default_out(source.run_dir)
    sha = {
        name: file_sha256(source.run_dir / name)
        for name in (RESULTS, SAMPLES)
        if (source.run_dir / name).exists()
    }
    _check_out(out_dir, source, sha)
    jobs = plan(source.cells(), prms, aggregations)
    replayer = Replayer(source, jobs, save_trees)
    replayer.check()
    cfg = _replay_cfg(source, jobs, out_dir)
    commit, dirty = git_commit()
    models = dict(source.meta.get("models") or {})
    models["prms"] = {
        p: (models.get("prms") or {}).get(p) or model_fingerprint(p, "prm") for p in cfg.prms
    }
    meta = {
        **{k: v for k, v in source.meta.items() if k not in ("history", "first_started")},
        "command": " ".join(argv if argv is not None else sys.argv),
        "config": cfg.to_dict(),
        "versions": _versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "models": models,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "replay": {
            "source": str(source.run_dir.resolve()),
            "source_sha256": sha,
            "source_command": source.meta.get("command"),
            "source_git_commit": source.meta.get("git_commit"),
            "source_versions": source.meta.get("versions"),
            "kinds": KINDS,
        },
    }
    with locked_out_dir(out_dir):
        _check_out(out_dir, source, sha)  # again, under the lock
        old = read_run_json(out_dir / RUN_JSON) if (out_dir / RUN_JSON).exists() else {}
        meta["first_started"] = old.get("first_started", meta["started"])
        meta["history"] = [
            *(old.get("history") or []),
            {"command": meta["command"], "started": meta["started"], "git_commit": commit},
        ]
        write_run_json(cfg, meta)
        results = out_dir / RESULTS
        repair_tail(results)
        done = finished_keys(read_results(results), retry_errors=False)
        problems = list(dict.fromkeys(pid for pid, _ in source.rows))
        todo = [
            (pid, j)
            for pid in problems
            for j in jobs
            if (pid, j.source.key()) in source.rows and (pid, j.target.key()) not in done
        ]
        bar = tqdm(total=len(todo), disable=not progress, desc="replay", unit="row")
        with open(results, "a") as fh:
            last = None
            for pid, job in todo:
                if pid != last:
                    replayer.forget()
                    last = pid
                append_jsonl(fh, [replayer.row(job, pid).to_dict()])
                bar.update(1)
        bar.close()
        keys = {j.target.key() for j in jobs}
        kept = [r for (_, key), r in latest_rows(read_results(results)).items() if key in keys]
        data = write_reports(kept, cfg, meta, out_dir)
        data["replay"] = {
            "source": meta["replay"]["source"],
            "policy_tokens": replayer.policy_tokens,
            "cells": {
                j.target.key(): {"kind": j.kind, "source_cell": j.source.key()} for j in jobs
            },
            "kinds": KINDS,
        }
        (out_dir / "summary.json").write_text(json.dumps(data, indent=2))
    return data

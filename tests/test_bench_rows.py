"""The bench runner's row types without a model: ResultRow / SampleRow keep the results format
byte for byte (rows written before the runner was split still load and re-serialize identically),
errors travel in Solution.error, and which cells are replayed comes from Strategy.replayable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench.grid import Cell, grid, is_replayed
from benchmarks.bench.replay import SampleRow
from benchmarks.bench.resume import finished_keys, latest_rows, read_results
from benchmarks.bench.robust import solve_robustly
from benchmarks.bench.rows import ROW_KEYS, ResultRow, grade_solution, written_reason
from benchmarks.config import BenchConfig
from reasoner.types import Problem, ReasonerError, Solution

DATA = Path(__file__).resolve().parent / "data"
# rows and samples written by the runner before it was split (benchmarks/runner.py at 2c2920a):
# plain, replayed, with trees, errored (a prompt longer than the context)
OLD_RESULTS = DATA / "bench_v1_results.jsonl"
OLD_SAMPLES = DATA / "bench_v1_samples.jsonl"
# the keys of every results.jsonl row, in order, as the old runner wrote them (its first row is
# a plain one: no tree, not replayed)
OLD_KEYS = list(json.loads(OLD_RESULTS.read_text().splitlines()[0]))

text = st.text(max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
counts = st.integers(min_value=0, max_value=10**9)
trees = st.none() | st.fixed_dictionaries(
    {"problem_text": text, "nodes": st.lists(st.dictionaries(text, counts, max_size=3))}
)
rows = st.builds(
    ResultRow,
    problem_id=text,
    dataset=text,
    strategy=text,
    budget=st.integers(min_value=1, max_value=64),
    prm=text,
    aggregation=text,
    seed=counts,
    answer=st.none() | text,
    gold=st.none() | text,
    correct=st.booleans(),
    covered=st.booleans(),
    steps=st.lists(text, max_size=4),
    step_scores=st.lists(floats, max_size=4),
    score=st.none() | floats,
    policy_tokens=counts,
    policy_new_tokens=counts,
    prm_tokens=counts,
    flops=floats,
    seconds=floats,
    wall_seconds=floats,
    nodes=counts,
    distinct_tokens=counts,
    reason=text,
    error=st.none() | text,
    tree=trees,
    subsampled_from=st.none() | st.integers(min_value=1, max_value=64),
)


@given(rows)
def test_result_row_round_trips_with_the_old_keys(row):
    data = row.to_dict()
    assert ResultRow.from_dict(data) == row
    assert ResultRow.from_dict(json.loads(json.dumps(data))) == row  # through the file format
    optional = [k for k in ("tree", "subsampled_from") if getattr(row, k) is not None]
    assert list(data) == OLD_KEYS + optional


def test_row_keys_are_the_old_keys():
    assert list(ROW_KEYS) == OLD_KEYS and len(OLD_KEYS) == 24


def test_rows_written_by_the_old_runner_reserialize_byte_identical():
    lines = OLD_RESULTS.read_text().splitlines()
    assert len(lines) >= 7
    kinds = set()
    for line in lines:
        row = ResultRow.from_dict(json.loads(line))
        assert json.dumps(row.to_dict()) == line
        kinds.add((row.error is not None, row.tree is not None, row.subsampled_from is not None))
    assert {(True, False, False), (False, True, True), (False, False, False)} <= kinds
    assert [r.to_dict() for r in read_results(OLD_RESULTS)] == [json.loads(x) for x in lines]


def test_samples_written_by_the_old_runner_reserialize_byte_identical():
    lines = OLD_SAMPLES.read_text().splitlines()
    samples = [SampleRow.from_dict(json.loads(line)) for line in lines]
    assert [json.dumps(s.to_dict()) for s in samples] == lines
    assert any(s.error for s in samples) and any(s.tree for s in samples)


def test_an_errored_solution_writes_the_old_error_row():
    """A problem the controller cannot search (Solution.failed) gives exactly the old row."""
    [old] = [
        json.loads(line)
        for line in OLD_RESULTS.read_text().splitlines()
        if json.loads(line)["error"] and "subsampled_from" not in json.loads(line)
    ]
    message = old["error"]
    sol = Solution.failed(old["problem_id"], old["strategy"], message)
    assert sol.reason == "error" and sol.error == message and sol.answer is None
    assert written_reason(sol) == f"error: {message}" == old["reason"]
    problem = Problem(text="a question", id=old["problem_id"], answer=old["gold"])
    cell = Cell(old["strategy"], old["budget"], old["prm"], old["aggregation"], old["seed"])
    assert grade_solution(problem, cell, sol, old["dataset"]).to_dict() == old


def test_solution_error_is_serialized_and_absent_means_none():
    failed = Solution.failed("p1", "greedy", "prompt too long")
    data = failed.to_dict()
    assert data["error"] == "prompt too long" and data["reason"] == "error"
    assert Solution.from_dict(data).error == "prompt too long"
    fine = Solution(answer="3", steps=["1 + 2 = 3"], reason="finished")
    assert fine.to_dict()["error"] is None and written_reason(fine) == "finished"
    old = fine.to_dict()
    del old["error"]  # a Solution serialized before the field existed
    assert Solution.from_dict(old).error is None


def test_solve_robustly_fails_only_the_failing_problem():
    problems = [Problem(text=t, id=t) for t in ("ok", "bad", "fine")]

    def solve_batch(batch):
        if any(p.id == "bad" for p in batch):
            raise RuntimeError("boom")
        return [Solution(answer=p.id, steps=[], problem_id=p.id) for p in batch]

    sols = solve_robustly(solve_batch, problems, "greedy")
    assert [s.answer for s in sols] == ["ok", None, "fine"]
    assert [s.error for s in sols] == [None, "RuntimeError: boom", None]
    assert sols[1].reason == "error" and sols[1].problem_id == "bad"


def test_resume_keys_latest_row_and_retry_errors(tmp_path):
    base = json.loads(OLD_RESULTS.read_text().splitlines()[0])
    errored = {**base, "error": "boom", "reason": "error: boom"}
    later = {**base, "answer": "x"}
    other = {**base, "problem_id": "another"}
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (errored, other, later)))
    rows = read_results(path)
    latest = latest_rows(rows)
    key = (base["problem_id"], ResultRow.from_dict(base).cell.key())
    assert latest[key].answer == "x" and len(latest) == 2  # the row written later wins
    assert finished_keys(rows[:2], retry_errors=True) == {("another", key[1])}
    assert len(finished_keys(rows[:2], retry_errors=False)) == 2
    path.write_text("\n" + json.dumps({"problem_id": "p"}) + "\n")  # the file's line 2
    with pytest.raises(
        ReasonerError, match=r"results.jsonl:2: not a result row \(missing key 'dataset'\)"
    ):
        read_results(path)
    path.write_text(json.dumps({**base, "budget": "four"}) + "\n")
    with pytest.raises(ReasonerError, match=r"results.jsonl:1: .*budget must be an int"):
        read_results(path)


def test_replayed_cells_come_from_strategy_replayable(monkeypatch):
    from reasoner import registry
    from reasoner.search import Pick, PRMUse, Rollout, Strategy

    class Votes(Strategy):
        name = "replayable_votes"
        prm = PRMUse.UNUSED
        replayable = True

        def search(self, ctx):
            [[leaf]] = yield Rollout([ctx.tree.root], k=1)
            return Pick(node=leaf)

    registry.available_strategies()
    monkeypatch.setitem(registry._REGISTRY, "replayable_votes", Votes)
    strategies = ["greedy", "majority", "best_of_n", "weighted_best_of_n", "beam"]
    cfg = BenchConfig.from_dict(
        {"strategies": [*strategies, "replayable_votes"], "budgets": [4], "subsample": True}
    )
    replayed = {c.strategy for c in grid(cfg) if is_replayed(cfg, c)}
    assert replayed == {"majority", "best_of_n", "weighted_best_of_n", "replayable_votes"}
    cfg.subsample = False
    assert not any(is_replayed(cfg, c) for c in grid(cfg))

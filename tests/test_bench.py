"""The benchmark runner end to end with tiny real checkpoints: suites, grid, subsampling, resume
after kill -9, per-problem errors, honesty (no gold in the search), bad input, real-data smoke."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA_DIR

from benchmarks.bench.grid import grid
from benchmarks.bench.resume import RESULTS, read_results
from benchmarks.bench.run import run_bench
from benchmarks.config import UNSET, BenchConfig, available_suites, find_suite, load_config
from benchmarks.report import TIME_FIELDS, wilson_interval
from reasoner.jsonl import read_jsonl, repair_tail
from reasoner.types import ReasonerError

ROOT = Path(__file__).resolve().parents[1]
# tiny caps: an untrained model writes at most 6 tokens per step, 3 steps per solution
FAST_FORMAT = {"max_step_tokens": 6, "max_steps": 3}


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """The tiny models run on one thread here (faster, and fair to a busy machine); put the
    process-wide torch setting back for the other test modules."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


ONE_THREAD = {"threads": 1}


def tiny_cfg(ckpt: Path, out: Path, **over) -> BenchConfig:
    base = {
        "policy_options": ONE_THREAD,
        "prm_options": ONE_THREAD,
        "name": "tiny",
        "dataset": "arith",
        "limit": 3,
        "policy": str(ckpt),
        "prms": [str(ckpt)],
        "strategies": ["greedy", "best_of_n"],
        "budgets": [2],
        "step_format": FAST_FORMAT,
        "batch_size": 2,
        "out_dir": str(out),
    }
    return BenchConfig.from_dict({**base, **over})


def cells_without_time(summary: dict) -> list[dict]:
    return [{k: v for k, v in c.items() if k not in TIME_FIELDS} for c in summary["cells"]]


def bench_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from reasoner.cli import main

    code = main(["bench", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------------------------
# Suites and config
# ----------------------------------------------------------------------------------------------


def test_shipped_suites_load_by_name_and_path():
    from reasoner.registry import available_strategies

    names = available_suites()
    assert {"arith", "arith_full", "gsm8k", "math500", "math"} <= set(names)
    for name in names:
        path = find_suite(name)
        assert path == find_suite(str(path))  # by bare name and by path: the same file
        try:
            cfg = load_config(name)
        except ReasonerError as err:  # only acceptable failure: a strategy not registered yet
            assert "unknown strategy" in str(err) and "available:" in str(err)
            continue
        assert cfg.name == name and set(cfg.strategies) <= set(available_strategies())
    arith = load_config("arith")
    assert arith.dataset == "arith" and arith.policy == "embedded" and arith.limit
    assert {"greedy", "majority", "best_of_n"} <= set(arith.strategies)
    assert max(load_config("arith_full").budgets) == 64
    assert load_config("arith", {"limit": UNSET}).limit is None  # --limit all
    assert load_config("arith", {"limit": None}).limit == arith.limit  # None: not given
    for real in ("gsm8k", "math500", "math"):
        cfg = load_config(real)
        assert cfg.step_format == "qwen-chat" and cfg.prm_step_format == "math-shepherd"
    # the suites are package data, found when installed too
    text = (ROOT / "pyproject.toml").read_text()
    assert 'benchmarks = ["suites/*.toml"]' in text and '"benchmarks*"' in text


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(
        ReasonerError,
        match=r"unknown suite 'arth' \(did you mean 'arith'\?\); available suites: arith",
    ):
        find_suite("arth")
    with pytest.raises(ReasonerError, match="suite file .*nope.toml does not exist"):
        find_suite(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset = "arith"\nbudget = [4]\n')
    with pytest.raises(
        ReasonerError,
        match=r"unknown key\(s\) \['budget'\] \(did you mean 'budgets'\?\); valid keys: .*'budgets'",
    ):
        BenchConfig.from_toml(bad)
    with pytest.raises(ReasonerError, match="unknown strategy 'beem'; available: .*best_of_n"):
        BenchConfig.from_dict({"strategies": ["greedy", "beem"]})
    with pytest.raises(ReasonerError, match="unknown dataset 'gsm9k'"):
        BenchConfig.from_dict({"dataset": "gsm9k"})
    with pytest.raises(ReasonerError, match="budgets must be a list of ints"):
        BenchConfig.from_dict({"budgets": ["four"]})
    with pytest.raises(ReasonerError, match="unknown aggregation 'max'"):
        BenchConfig.from_dict({"aggregations": ["max"]})
    with pytest.raises(ReasonerError, match="strategy 'best_of_n': unknown option"):
        BenchConfig.from_dict({"strategy_options": {"best_of_n": {"widht": 2}}})
    with pytest.raises(ReasonerError, match="invalid TOML"):
        bad.write_text("budgets = [4,\n")
        BenchConfig.from_toml(bad)


def test_grid_budget_free_prm_free_and_per_strategy_budgets():
    cfg = BenchConfig.from_dict(
        {
            "strategies": ["greedy", "majority", "best_of_n"],
            "budgets": [1, 4],
            "prms": ["embedded", "none"],
            "aggregations": ["min", "last"],
            "strategy_budgets": {"best_of_n": [4]},
        }
    )
    keys = {c.key() for c in grid(cfg)}
    assert keys == {
        "greedy|1|none|-|0",
        "majority|1|none|-|0",
        "majority|4|none|-|0",
        "best_of_n|4|embedded|min|0",
        "best_of_n|4|embedded|last|0",
        "best_of_n|4|none|-|0",
    }


def test_wilson_and_torn_lines(tmp_path):
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]  # a kill mid-write loses only that row
    repair_tail(path)
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    path.write_text('{"a": 1}\n{"a\n{"a": 3}\n')
    with pytest.raises(ReasonerError, match="r.jsonl:2: malformed result row"):
        read_results(path)


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


def test_subsampled_curves_equal_separate_runs(tiny_ckpt, tmp_path):
    """best_of_n / majority / weighted_best_of_n at N=1,2 replayed from one N=3 run equal real runs."""
    strategies = ["majority", "best_of_n", "weighted_best_of_n"]
    common = {"strategies": strategies, "budgets": [1, 2, 3], "aggregations": ["min", "last"]}
    real = run_bench(tiny_cfg(tiny_ckpt, tmp_path / "real", **common), progress=False)
    sub = run_bench(
        tiny_cfg(tiny_ckpt, tmp_path / "sub", subsample=True, save_trees=True, **common),
        progress=False,
    )
    samples = read_jsonl(tmp_path / "sub" / "samples.jsonl")
    assert len(samples) == 3 and {s["budget"] for s in samples} == {3}  # ONE run per problem
    real_rows = {
        (r["problem_id"], r["strategy"], r["budget"], r["aggregation"]): r
        for r in read_jsonl(tmp_path / "real" / RESULTS)
    }
    sub_rows = read_jsonl(tmp_path / "sub" / RESULTS)
    assert len(sub_rows) == len(real_rows) == 3 * (3 + 3 * 2 * 2)
    for r in sub_rows:
        twin = real_rows[(r["problem_id"], r["strategy"], r["budget"], r["aggregation"])]
        for key in (
            "answer",
            "steps",
            "step_scores",
            "correct",
            "covered",
            "policy_tokens",
            "policy_new_tokens",
        ):
            assert r[key] == pytest.approx(twin[key]), key
        assert r["score"] == pytest.approx(twin["score"]) and r["subsampled_from"] == 3
        # PRM tokens of one problem are a share of a batched call's (by text length) in both
        # runs, so they agree only roughly; so do the FLOPs that include them
        assert r["prm_tokens"] == pytest.approx(twin["prm_tokens"], rel=0.25)
        assert r["flops"] == pytest.approx(twin["flops"], rel=0.25)
        leaves = [n for n in r["tree"]["nodes"] if n["terminal"]]
        assert len(leaves) == r["budget"]  # the replayed tree holds only the first n rollouts
    assert [c["accuracy"] for c in sub["cells"]] == [c["accuracy"] for c in real["cells"]]
    md = (tmp_path / "sub" / "summary.md").read_text()
    assert "subsampled" in md and "ONE" in md and "samples.jsonl" in md


def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_ckpt, tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        f"""
name = "tiny"
dataset = "arith"
limit = 8
policy = "{tiny_ckpt}"
prms = ["{tiny_ckpt}"]
policy_options = {{ threads = 1 }}
prm_options = {{ threads = 1 }}
strategies = ["greedy", "majority", "best_of_n", "greedy_step"]
budgets = [1, 2]
subsample = true
batch_size = 2
step_format = {{ max_step_tokens = 6, max_steps = 3 }}
"""
    )
    total = 8 * (1 + 2 + 2 + 2)
    # killed run: a subprocess, kill -9 once some rows are written, then a torn half-row
    killed = tmp_path / "killed"
    args = [str(suite), "--out", str(killed), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasoner.cli", "bench", *args],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = killed / RESULTS
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = results.read_text()
    n_before = len(before.splitlines())
    assert 3 <= n_before < total
    with open(results, "a") as fh:
        fh.write('{"problem_id": "arith-test-0007", "strat')  # as if killed mid-write
    # rerun with the same arguments, and an uninterrupted reference run
    code, out, _ = bench_cli(args, capsys)
    assert code == 0 and "accuracy % (95% CI)" in out
    code, _, _ = bench_cli([str(suite), "--out", str(tmp_path / "ref"), "--quiet"], capsys)
    assert code == 0
    after = results.read_text()
    assert after.startswith(before)  # nothing finished was redone or rewritten
    assert len(after.splitlines()) == total
    resumed = json.loads((killed / "summary.json").read_text())
    reference = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert cells_without_time(resumed) == cells_without_time(reference)
    assert len(resumed["meta"]["history"]) == 2
    # a third run finds everything done; a run with other settings is refused, naming them
    code, out, err = bench_cli(args + ["--temperature", "0.5", "--set", "max_nodes=99"], capsys)
    assert code == 2 and err.startswith("reasoner: error:")
    assert (
        "temperature: 1.0 there, 0.5 now" in err and "max_nodes" in err and "another --out" in err
    )
    # a larger grid on the same settings is compatible: only the new cells run
    code, _, _ = bench_cli(args + ["--budgets", "1,2,3"], capsys)
    assert code == 0
    rows = read_jsonl(results)
    assert len(rows) == total + 8 * 3 and rows[:total] == [
        json.loads(x) for x in after.splitlines()
    ]


def test_failing_problem_records_error_and_run_goes_on(tiny_ckpt, tmp_path, monkeypatch):
    from reasoner import registry
    from reasoner.search import Pick, PRMUse, Rollout, Strategy

    class Boom(Strategy):
        name = "boom_on_marker"
        prm = PRMUse.UNUSED

        def search(self, ctx):
            if "BOOM" in ctx.tree.problem_text:
                raise RuntimeError("boom")
            [[leaf]] = yield Rollout([ctx.tree.root], k=1)
            return Pick(node=leaf)

    registry.available_strategies()
    monkeypatch.setitem(registry._REGISTRY, "boom_on_marker", Boom)
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    questions = [
        "Ann has 3 apples and buys 4 more. How many apples does she have?",
        "How many? " + "Ann has many apples and pears and plums. " * 400,  # beyond the context
        "BOOM Bob has 2 pens. How many pens does he have?",
        "Cy has 5 cats. How many cats?",
    ]
    with open(data / "test.jsonl", "w") as fh:
        for i, q in enumerate(questions):
            fh.write(json.dumps({"question": q, "answer": f"work\n#### {i}"}) + "\n")
    cfg = tiny_cfg(
        tiny_ckpt,
        tmp_path / "out",
        dataset="gsm8k",
        data_dir=str(tmp_path / "data"),
        limit=None,
        strategies=["greedy", "boom_on_marker"],
        batch_size=4,
    )
    summary = run_bench(cfg, progress=False)
    rows = {(r["problem_id"], r["strategy"]): r for r in read_jsonl(tmp_path / "out" / RESULTS)}
    assert len(rows) == 8
    for strategy in ("greedy", "boom_on_marker"):
        assert "context" in rows[("gsm8k-test-0001", strategy)]["error"]
        assert rows[("gsm8k-test-0000", strategy)]["error"] is None
        assert rows[("gsm8k-test-0003", strategy)]["error"] is None
    assert rows[("gsm8k-test-0002", "boom_on_marker")]["error"] == "RuntimeError: boom"
    assert rows[("gsm8k-test-0002", "greedy")]["error"] is None
    assert [c["errors"] for c in summary["cells"]] == [1, 2]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "## Errors: 3 rows in 2 problems (counted as wrong)" in md and "RuntimeError: boom" in md
    assert "all 4 problems of the split" in md
    # a rerun redoes nothing; with retry_errors only the errored rows run again (and still fail)
    run_bench(cfg, progress=False)
    assert len(read_jsonl(tmp_path / "out" / RESULTS)) == 8
    cfg.retry_errors = True
    again = run_bench(cfg, progress=False)
    assert len(read_jsonl(tmp_path / "out" / RESULTS)) == 8 + 3
    assert [c["errors"] for c in again["cells"]] == [1, 2] and [c["n"] for c in again["cells"]] == [
        4,
        4,
    ]


def test_gold_answer_never_reaches_a_strategy(tiny_ckpt, tmp_path, monkeypatch):
    from reasoner import registry
    from reasoner.controller import Controller
    from reasoner.search import Pick, PRMUse, Rollout, Strategy

    seen_problems, seen_contexts = [], []
    original_run = Controller.run

    def spy_run(self, problems, strategy, budget):
        seen_problems.extend(problems)
        return original_run(self, problems, strategy, budget)

    class Spy(Strategy):
        name = "spy_no_gold"
        prm = PRMUse.UNUSED

        def search(self, ctx):
            seen_contexts.append(ctx)
            [[leaf]] = yield Rollout([ctx.tree.root], k=1)
            return Pick(node=leaf)

    registry.available_strategies()
    monkeypatch.setitem(registry._REGISTRY, "spy_no_gold", Spy)
    monkeypatch.setattr(Controller, "run", spy_run)
    cfg = tiny_cfg(
        tiny_ckpt,
        tmp_path / "out",
        strategies=["spy_no_gold", "best_of_n", "majority"],
        subsample=True,
    )
    run_bench(cfg, progress=False)
    rows = read_jsonl(tmp_path / "out" / RESULTS)
    assert all(r["gold"] for r in rows)  # the gold grades the rows...
    assert len(seen_contexts) == 3 and len(seen_problems) >= 6  # the spy, the sampler, replays
    for p in seen_problems:  # ...and never reaches a search
        assert p.answer is None and p.reference is None
        assert p.metadata == {}  # arith metadata holds the worked solution: never passed on
    for ctx in seen_contexts:
        assert not any(hasattr(ctx, k) for k in ("problem", "answer", "gold"))
        assert not hasattr(ctx.tree, "answer")


def test_cli_bad_input_prints_one_error_and_exits_2(tiny_ckpt, tmp_path, capsys):
    cases = [
        (["no_such_suite"], "unknown suite 'no_such_suite'"),
        (["arith", "--strategies", "greedy,nope"], "unknown strategy 'nope'; available:"),
        (["arith", "--set", "limt=3"], "unknown key(s) ['limt'] (did you mean 'limit'?)"),
        (["arith", "--policy", str(tmp_path / "missing")], "does not exist"),
        (
            ["gsm8k", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "o")],
            f"file not found: {tmp_path / 'nodata' / 'gsm8k' / 'test.jsonl'}",
        ),
        (["arith", "--suite", "gsm8k"], "two suites given"),
    ]
    for args, message in cases:
        code, _, err = bench_cli(args, capsys)
        assert code == 2, args
        assert err.startswith("reasoner: error:") and message in err, err
        assert "Traceback" not in err
    code, _, err = bench_cli(["gsm8k", "--data-dir", str(tmp_path / "nodata")], capsys)
    assert "--data-dir" in err and "REASONER_DATA" in err


@pytest.mark.skipif(not (DATA_DIR / "gsm8k" / "test.jsonl").exists(), reason="no shared data")
@pytest.mark.parametrize(
    "suite, rel, sha",
    [
        (
            "gsm8k",
            "gsm8k/test.jsonl",
            "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
        ),
        (
            "math500",
            "math/math500.jsonl",
            "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
        ),
    ],
)
def test_real_suites_smoke(suite, rel, sha, tiny_ckpt, tmp_path, monkeypatch):
    """The shipped real-model suites, on 3 problems with tiny models: loaders, prompts, graders."""
    import reasoner.grading as grading

    graded = []
    original = grading.grade
    monkeypatch.setattr(
        grading, "grade", lambda p, g, **kw: graded.append((p, g)) or original(p, g, **kw)
    )
    monkeypatch.setenv("REASONER_DATA", str(DATA_DIR))
    cfg = load_config(
        suite,
        {
            "limit": 3,
            "policy": str(tiny_ckpt),
            "policy_options": ONE_THREAD,
            "prms": [str(tiny_ckpt)],
            "prm_options": ONE_THREAD,
            # long enough that the untrained model writes numbers: answers to grade
            "step_format": {"max_step_tokens": 24, "max_steps": 1},
            "prm_step_format": FAST_FORMAT,
            "strategies": ["greedy", "best_of_n"],
            "budgets": [4],
            "out_dir": str(tmp_path / suite),
        },
    )
    summary = run_bench(cfg, progress=False)
    rows = read_jsonl(tmp_path / suite / RESULTS)
    assert len(rows) == 3 * len(grid(cfg)) and not any(r["error"] for r in rows)
    assert all(r["gold"] for r in rows)
    # the untrained model's chains are cut by the caps: truncated, so no answer is graded (#16);
    # the suite's gold answers still go through its grader
    assert all(r["reason"] == "truncated" and r["answer"] is None for r in rows) or graded
    assert all(grading.grade(r["gold"], r["gold"]) for r in rows) and graded
    meta = json.loads((tmp_path / suite / "run.json").read_text())
    assert meta["data_files"] == [{"file": rel, "path": str(DATA_DIR / rel), "sha256": sha}]
    assert meta["problems"]["used"] == 3 and meta["problems"]["split_total"] in (1319, 500)
    md = (tmp_path / suite / "summary.md").read_text()
    assert "**a subset**: problems 0-2" in md and sha[:12] in md
    assert (tmp_path / suite / "accuracy.png").stat().st_size > 10_000
    assert summary["cells"][0]["n"] == 3


# ----------------------------------------------------------------------------------------------
# One process per --out, settings that fail every row, hand-edited run files (#14)
# ----------------------------------------------------------------------------------------------

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_process_on_the_same_out_dir_is_refused_naming_the_holder(tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            ReasonerError, match=rf"{out} is in use by another bench process \(pid {holder.pid}\)"
        ):
            run_bench(tiny_cfg(tiny_ckpt, out, limit=1), progress=False)
        assert not (out / RESULTS).exists()  # no row computed twice
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed -9: its lock went with it, and the file left behind is taken over
    assert (out / ".lock").read_text().strip() == str(holder.pid)
    run_bench(tiny_cfg(tiny_ckpt, out, limit=1), progress=False)
    assert len(read_jsonl(out / RESULTS)) == 2


def test_a_setting_that_fails_every_prompt_is_one_error_before_any_row(tiny_ckpt, tmp_path):
    """The gsm8k suite's chat-template format with a policy whose tokenizer has no chat template
    failed every row (exit 0); now it is one error and nothing is run."""
    out = tmp_path / "out"
    cfg = tiny_cfg(tiny_ckpt, out, step_format={**FAST_FORMAT, "use_chat_template": True})
    with pytest.raises(
        ReasonerError,
        match=r"cannot take the prompt of any of the 3 problems .*arith-test-0000: "
        r"StepFormat.use_chat_template is set but the tokenizer has no chat template",
    ):
        run_bench(cfg, progress=False)
    assert not (out / RESULTS).exists() and not (out / "run.json").exists()
    run_bench(tiny_cfg(tiny_ckpt, out), progress=False)  # fixed settings: the dir is free
    assert len(read_jsonl(out / RESULTS)) == 6


def test_every_row_errored_exits_nonzero(tiny_ckpt, tmp_path, monkeypatch, capsys):
    from reasoner import registry
    from reasoner.search import PRMUse, Strategy

    class Broken(Strategy):
        name = "always_broken"
        prm = PRMUse.UNUSED

        def search(self, ctx):
            raise RuntimeError("broken strategy")
            yield

    registry.available_strategies()
    monkeypatch.setitem(registry._REGISTRY, "always_broken", Broken)
    suite = tmp_path / "broken.toml"
    suite.write_text(
        f'dataset = "arith"\nlimit = 2\npolicy = "{tiny_ckpt}"\nprms = ["none"]\n'
        'strategies = ["always_broken"]\nbudgets = [1]\n'
        "policy_options = { threads = 1 }\nstep_format = { max_step_tokens = 6, max_steps = 3 }\n"
    )
    code, out, err = bench_cli([str(suite), "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 2 and "accuracy" in out  # the table is still printed
    assert err.startswith("reasoner: error: every row of this run recorded an error")
    assert err.count("\n") == 1


def test_hand_edited_run_files_are_errors_naming_file_and_line(tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    cfg = tiny_cfg(tiny_ckpt, out, limit=1, strategies=["best_of_n"], subsample=True)
    run_bench(cfg, progress=False)
    samples = out / "samples.jsonl"
    row = json.loads(samples.read_text().splitlines()[0])
    del row["budget"]
    samples.write_text(json.dumps(row) + "\n")
    (out / RESULTS).write_text("")  # so the samples are read again
    with pytest.raises(
        ReasonerError, match=r"samples.jsonl:1: not a sample row \(missing key 'budget'\)"
    ):
        run_bench(cfg, progress=False)
    (out / "run.json").write_text("[1, 2]")
    with pytest.raises(ReasonerError, match=r"run.json is not a run record"):
        run_bench(cfg, progress=False)
    (out / "run.json").write_bytes(b'{"config": "\xff"}')
    with pytest.raises(ReasonerError, match=r"run.json is not valid JSON"):
        run_bench(cfg, progress=False)


def test_a_plugin_prm_family_named_in_a_suite_runs_and_is_fingerprinted(
    tiny_ckpt, tmp_path, monkeypatch
):
    from reasoner.models import loading
    from reasoner.models.base import PRMFamily
    from reasoner.step_format import StepFormat

    class ConstantPRM:
        num_parameters = 0
        step_format = StepFormat()

        def score(self, requests):
            return [[0.25] * len(r.steps) for r in requests], 0

        def clear_cache(self):
            pass

    class Constant(PRMFamily):
        name = "constant-test"

        @classmethod
        def load(cls, path, backend, step_format, **options):
            return ConstantPRM()

    monkeypatch.setitem(loading.PRM_FAMILIES.entries, "constant-test", Constant)
    cfg = tiny_cfg(tiny_ckpt, tmp_path / "out", prms=["constant-test"], strategies=["best_of_n"])
    run_bench(cfg, progress=False)
    rows = read_jsonl(tmp_path / "out" / RESULTS)
    assert rows and all(r["prm"] == "constant-test" for r in rows)
    assert all(set(r["step_scores"]) <= {0.25} for r in rows)
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "family:constant-test" in json.dumps(meta)

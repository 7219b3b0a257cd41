"""`reasoner replay`: a bench run's saved trees re-scored and re-selected without generating.

With tiny real checkpoints: a replay under the run's own PRM and aggregation reproduces its
summary exactly; under another PRM it loads no policy (a policy load raises here), its best-of-N
rows equal a real bench run with that PRM, and its scores are that PRM's; the source directory is
byte-for-byte unchanged; bad input is one clear error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import build_tiny_checkpoint

from benchmarks.bench.resume import RESULTS
from benchmarks.bench.run import run_bench
from benchmarks.config import BenchConfig
from reasoner.jsonl import read_jsonl
from reasoner.types import ReasonerError

FAST_FORMAT = {"max_step_tokens": 6, "max_steps": 3}
ONE_THREAD = {"threads": 1}
STRATEGIES = ["greedy", "majority", "best_of_n", "weighted_best_of_n", "beam"]


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny_cfg(ckpt: Path, out: Path, **over) -> BenchConfig:
    base = {
        "policy_options": ONE_THREAD,
        "prm_options": ONE_THREAD,
        "name": "tiny",
        "dataset": "arith",
        "limit": 3,
        "policy": str(ckpt),
        "prms": [str(ckpt)],
        "strategies": STRATEGIES,
        "budgets": [2],
        "strategy_options": {"beam": {"width": 2}},
        "step_format": FAST_FORMAT,
        "batch_size": 2,
        "save_trees": True,
        "out_dir": str(out),
    }
    return BenchConfig.from_dict({**base, **over})


def dir_hashes(d: Path) -> dict[str, str]:
    return {
        p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def second_prm(tmp_path_factory) -> Path:
    """Another tiny LM PRM (other random weights): scores that differ from the run's."""
    return build_tiny_checkpoint(tmp_path_factory.mktemp("prm2"), seed=1)


@pytest.fixture(scope="module")
def source_run(tiny_ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("src") / "run"
    run_bench(tiny_cfg(tiny_ckpt, out, aggregations=["min", "last"]), progress=False)
    return out


def forbid_policy(monkeypatch) -> None:
    """From now on any policy load raises: a replay must not even load one."""

    def refuse(*args, **kwargs):
        raise AssertionError("replay loaded a policy")

    import benchmarks.bench.models
    import reasoner.api
    import reasoner.models.loading

    for module in (reasoner.api, reasoner.models.loading, benchmarks.bench.models):
        monkeypatch.setattr(module, "load_policy", refuse)


@pytest.fixture()
def no_policy(monkeypatch):
    forbid_policy(monkeypatch)


def test_replay_under_the_runs_own_prm_and_aggregation_reproduces_its_summary(
    source_run, tmp_path, no_policy
):
    from benchmarks.bench.rescore_run import replay_run

    before = dir_hashes(source_run)
    source = json.loads((source_run / "summary.json").read_text())
    data = replay_run(source_run, out=tmp_path / "replay", progress=False)
    assert dir_hashes(source_run) == before  # the source run is only read
    replayed = {(c["strategy"], c["budget"], c["prm"], c["aggregation"]): c for c in data["cells"]}
    exact = [c for c in source["cells"] if c["strategy"] != "beam"]
    assert {c["strategy"] for c in exact} == {
        "greedy",
        "majority",
        "best_of_n",
        "weighted_best_of_n",
    }
    for cell in exact:  # every field of the summary: accuracy, CI, coverage, tokens, seconds
        twin = replayed[(cell["strategy"], cell["budget"], cell["prm"], cell["aggregation"])]
        assert twin == cell, cell["strategy"]
    rows = read_jsonl(tmp_path / "replay" / RESULTS)
    src_rows = {
        (r["problem_id"], r["strategy"], r["aggregation"]): r
        for r in read_jsonl(source_run / RESULTS)
    }
    assert len(rows) == len(src_rows)
    for r in rows:
        assert r["replay_policy_tokens"] == 0
        assert r["replayed_from"] == str(source_run.resolve())
        kind = r["replay"]["kind"]
        assert kind == {"beam": "tree-pick", "greedy": "prm-free", "majority": "prm-free"}.get(
            r["strategy"], "exact"
        )
        twin = src_rows[(r["problem_id"], r["strategy"], r["aggregation"])]
        if kind != "tree-pick":
            for key in ("answer", "steps", "step_scores", "score", "correct", "reason"):
                assert r[key] == twin[key], (r["strategy"], key)
    assert data["replay"]["policy_tokens"] == 0
    md = (tmp_path / "replay" / "summary.md").read_text()
    assert (
        "Replay of" in md and "tree-pick" in md and (tmp_path / "replay" / "accuracy.png").is_file()
    )


def test_subsampled_run_replays_exactly(tiny_ckpt, tmp_path, monkeypatch):
    """A subsample run (no --save-trees: its sampling trees are in samples.jsonl) replays too."""
    from benchmarks.bench.rescore_run import replay_run

    src = tmp_path / "sub"
    strategies = ["best_of_n", "weighted_best_of_n"]
    cfg = tiny_cfg(tiny_ckpt, src, strategies=strategies, budgets=[1, 3], subsample=True)
    cfg.save_trees = False
    source = run_bench(cfg, progress=False)
    forbid_policy(monkeypatch)
    data = replay_run(src, out=tmp_path / "replay", progress=False)
    assert data["cells"] == source["cells"]


def test_replay_under_another_prm_loads_no_policy_and_equals_a_real_run(
    source_run, tiny_ckpt, second_prm, tmp_path, monkeypatch
):
    from benchmarks.bench.rescore_run import replay_run
    from reasoner.api import load_prm
    from reasoner.models.base import ScoreRequest

    # the real run with the second PRM first (it needs its policy), then the replay without one
    real_dir = tmp_path / "real"
    run_bench(
        tiny_cfg(
            tiny_ckpt,
            real_dir,
            prms=[str(second_prm)],
            strategies=["best_of_n", "weighted_best_of_n"],
            aggregations=["last"],
        ),
        progress=False,
    )
    forbid_policy(monkeypatch)
    before = dir_hashes(source_run)
    out = tmp_path / "replay"
    data = replay_run(
        source_run, prms=[str(second_prm)], aggregations=["last", "prod"], out=out, progress=False
    )
    assert dir_hashes(source_run) == before
    rows = read_jsonl(out / RESULTS)
    assert rows and all(r["replay_policy_tokens"] == 0 for r in rows)
    assert data["replay"]["policy_tokens"] == 0
    real = {(r["problem_id"], r["strategy"]): r for r in read_jsonl(real_dir / RESULTS)}
    prm = load_prm(str(second_prm), "hf", FAST_FORMAT, threads=1)
    checked = 0
    for r in rows:
        if r["replay"]["kind"] == "prm-free":
            assert r["prm"] == "none"
            continue
        assert r["prm"] == str(second_prm) and r["replay"]["scores"] == "rescored"
        assert r["replay"]["rescore_prm_tokens"] > 0 and r["prm_tokens"] > 0
        if r["strategy"] in ("best_of_n", "weighted_best_of_n") and r["aggregation"] == "last":
            twin = real[(r["problem_id"], r["strategy"])]
            for key in ("answer", "steps", "correct", "policy_tokens"):
                assert r[key] == twin[key], (r["strategy"], key)
            assert r["step_scores"] == pytest.approx(twin["step_scores"], abs=1e-5)
            checked += 1
        if r["steps"]:  # the chosen chain's scores are the new PRM's own
            request = ScoreRequest(_problem_text(source_run, r["problem_id"]), r["steps"])
            [scores], _ = prm.score([request])
            assert r["step_scores"] == pytest.approx(scores, abs=1e-5)
    assert checked == 2 * 3


def _problem_text(run: Path, pid: str) -> str:
    for r in read_jsonl(run / RESULTS):
        if r["problem_id"] == pid and r.get("tree"):
            return r["tree"]["problem_text"]
    raise KeyError(pid)


# ----------------------------------------------------------------------------------------------
# bad input: one clear error, the source untouched
# ----------------------------------------------------------------------------------------------


def replay_cli(args: list[str], capsys) -> tuple[int, str]:
    from reasoner.cli import main

    code = main(["replay", *args])
    return code, capsys.readouterr().err


def test_bad_input_is_one_clear_error(source_run, tiny_ckpt, tmp_path, capsys):
    before = dir_hashes(source_run)
    out = str(tmp_path / "o")
    cases = [
        (
            [str(source_run), "--aggregations", "median", "--out", out],
            "unknown aggregation 'median'",
        ),
        ([str(source_run), "--prms", str(tmp_path / "nope"), "--out", out], "does not load"),
        ([str(tmp_path / "missing")], "is not a bench run directory"),
        ([str(source_run), "--out", str(source_run / "inside")], "inside the source run"),
    ]
    broken = tmp_path / "broken-prm"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    cases.append(([str(source_run), "--prms", str(broken), "--out", out], "does not load"))
    for args, needle in cases:
        code, err = replay_cli(args, capsys)
        assert code == 2 and needle in err, (args, err)
        assert err.count("\n") == 1 and err.startswith("reasoner: error:"), err
    assert dir_hashes(source_run) == before
    assert not (tmp_path / "o").exists()


def test_runs_without_trees_or_from_another_version_are_refused(tiny_ckpt, tmp_path, capsys):
    import shutil

    plain = tmp_path / "plain"
    run_bench(
        tiny_cfg(tiny_ckpt, plain, strategies=["best_of_n"], save_trees=False, limit=1),
        progress=False,
    )
    code, err = replay_cli([str(plain)], capsys)
    assert code == 2 and "no saved tree" in err and "--save-trees" in err, err

    # another version: a tree node field this version does not know
    other = tmp_path / "other"
    run_bench(tiny_cfg(tiny_ckpt, other, strategies=["best_of_n"], limit=1), progress=False)
    lines = (other / RESULTS).read_text().splitlines()
    row = json.loads(lines[0])
    row["tree"]["nodes"][1]["future_field"] = 1
    (other / RESULTS).write_text(json.dumps(row) + "\n")
    code, err = replay_cli([str(other), "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "not a run this version can replay" in err and "future_field" in err, err

    # trees saved before bench stored the replay record: refused before anything is written
    del row["tree"]["nodes"][1]["future_field"], row["tree"]["replay"]
    (other / RESULTS).write_text(json.dumps(row) + "\n")
    code, err = replay_cli([str(other), "--out", str(tmp_path / "o4")], capsys)
    assert code == 2 and "lacks the replay record" in err, err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o4").exists()

    # a run.json whose config this version does not know
    old = tmp_path / "old"
    shutil.copytree(plain, old)
    meta = json.loads((old / "run.json").read_text())
    meta["config"]["retired_key"] = 1
    (old / "run.json").write_text(json.dumps(meta))
    code, err = replay_cli([str(old), "--out", str(tmp_path / "o3")], capsys)
    assert code == 2 and "not a run this version can replay" in err and "retired_key" in err, err


def test_rerun_resumes_and_another_source_is_refused(source_run, tiny_ckpt, tmp_path, capsys):
    from benchmarks.bench.rescore_run import replay_run

    out = tmp_path / "r"
    first = replay_run(source_run, aggregations=["mean"], out=out, progress=False)
    lines = (out / RESULTS).read_text().splitlines()
    again = replay_run(source_run, aggregations=["mean"], out=out, progress=False)
    assert (out / RESULTS).read_text().splitlines() == lines  # nothing recomputed
    assert again["cells"] == first["cells"]
    other = tmp_path / "other"
    run_bench(tiny_cfg(tiny_ckpt, other, strategies=["greedy"], limit=1), progress=False)
    with pytest.raises(ReasonerError, match="replay of another run"):
        replay_run(other, out=out, progress=False)


def test_cli_bench_save_trees_reports_their_size_and_replay_runs(tiny_ckpt, tmp_path, capsys):
    from reasoner.cli import main

    out = tmp_path / "cli"
    sets = ['step_format={"max_step_tokens": 6, "max_steps": 3}', 'policy_options={"threads": 1}']
    args = ["bench", "arith", "--limit", "1", "--policy", str(tiny_ckpt), "--prms", str(tiny_ckpt)]
    args += ["--strategies", "best_of_n,beam", "--budgets", "2", "--save-trees", "--quiet"]
    args += [
        "--out",
        str(out),
        "--set",
        sets[0],
        "--set",
        sets[1],
        "--set",
        'strategy_options={"beam": {"width": 2}}',
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "trees:   2 rows with a saved tree" in printed, printed
    row = read_jsonl(out / RESULTS)[0]
    assert set(row["tree"]["replay"]) == {"step_format", "policy_parameters", "prm_parameters"}
    assert main(["replay", str(out), "--aggregations", "last", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(0 policy tokens)" in printed and "tree-pick:" in printed and "exact:" in printed
    assert (tmp_path / "cli-replay" / "summary.md").is_file()

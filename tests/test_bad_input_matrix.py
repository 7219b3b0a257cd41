"""The bad-input matrix: every user-facing bad input -> one clear error and its exit code.

Each case is (command line, a fragment the error must contain, exit code), run through the real
CLI: in-process (`reasoner.cli.main`) for speed, and a few as real subprocesses so the exit code
and the single `reasoner: error:` line on stderr are what a shell sees. Placeholders in a
command: {ckpt} a tiny checkpoint, {tmp} a directory of prepared bad files (below). Exit codes:
0 done, 2 bad input (or a refusal of the system: no permission, disk full), 130 interrupted;
1 only ever comes from a Python traceback, which no case may produce.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_tiny_checkpoint

from reasoner.cli import main
from reasoner.types import ReasonerError

ROOT = Path(__file__).resolve().parents[1]
FAST = {"max_step_tokens": 6, "max_steps": 3}
LONG = "Ann has many apples and pears and plums. " * 300


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """A tiny checkpoint (fast step caps) and the bad files the cases name."""
    tmp = tmp_path_factory.mktemp("bad")
    ckpt = build_tiny_checkpoint(tmp / "ckpt")
    (ckpt / "step_format.json").write_text(json.dumps(FAST))
    good = json.dumps({"question": "Ann has 2 pens. How many?", "answer": "w\n#### 2"})
    for name, body in {
        "malformed": f'{good}\n{{"question": \n{good}\n',
        "noanswer": good + "\n" + json.dumps({"question": "q?", "answer": "no marker"}) + "\n",
        "surrogate": good + '\n{"question": "Ann \\ud800?", "answer": "w\\n#### 1"}\n',
    }.items():
        (tmp / name / "gsm8k").mkdir(parents=True)
        (tmp / name / "gsm8k" / "test.jsonl").write_text(body)
    (tmp / "badutf8" / "gsm8k").mkdir(parents=True)
    (tmp / "badutf8" / "gsm8k" / "test.jsonl").write_bytes(good.encode() + b"\n\xff\xfe\n")
    files = {
        "bad.toml": "budgets = [4,\n",
        "typo.toml": 'dataset = "arith"\nbudget = [4]\n',
        "wrongtype.toml": 'dataset = "arith"\nlimit = "five"\n',
        "policy_nan.toml": "lr = nan\n",
        "policy_str.toml": 'lr = "fast"\n',
        "label_typo.toml": "sampels = 4\n",
        "prm_groups.toml": 'kind = "evidence"\nevidence_groups = ["tokens"]\n',
        "prm_cross.toml": 'kind = "evidence"\nextra_layers = 2\n',
        "chat.toml": f'dataset = "arith"\nlimit = 2\npolicy = "{ckpt}"\nprms = ["none"]\n'
        'strategies = ["greedy"]\nstep_format = { use_chat_template = true }\n',
        "fmt_bad.toml": "max_steps = \n",
        "fmt_key.toml": "delimeter = '\\n'\n",
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / "bad_utf8.toml").write_bytes(b'dataset = "\xff"\n')
    (tmp / "labels.jsonl").write_text('{"problem_id": "p"}\n{"x": \n{}\n')
    (tmp / "afile").write_text("not a directory")
    return {"ckpt": ckpt, "tmp": tmp}


def expand(args: list[str], env: dict[str, Path]) -> list[str]:
    return [a.replace("{ckpt}", str(env["ckpt"])).replace("{tmp}", str(env["tmp"])) for a in args]


# (id, command line, fragment of the error, exit code)
CASES = [
    # ---- solve
    ("solve-empty", ["solve", ""], "problem text is empty", 2),
    ("solve-blank", ["solve", "  \n\t"], "problem text is empty", 2),
    (
        "solve-strategy",
        ["solve", "x", "--strategy", "nope"],
        "unknown strategy 'nope'; available:",
        2,
    ),
    (
        "solve-option",
        ["solve", "x", "--strategy", "beam", "--option", "widht=2"],
        "strategy 'beam': unknown option(s) ['widht']; valid: ['lookahead', 'width']",
        2,
    ),
    ("solve-option-form", ["solve", "x", "--option", "width"], "--option expects key=value", 2),
    ("solve-aggregation", ["solve", "x", "--aggregation", "max"], "unknown aggregation 'max'", 2),
    ("solve-backend", ["solve", "x", "--backend", "tpu"], "invalid choice: 'tpu'", 2),
    ("solve-budget-0", ["solve", "x", "--budget", "0"], "budget must be an integer >= 1", 2),
    ("solve-budget-neg", ["solve", "x", "--budget", "-3"], "budget must be an integer >= 1", 2),
    ("solve-budget-huge", ["solve", "x", "--budget", "100000"], "cannot fit in one search", 2),
    ("solve-budget-text", ["solve", "x", "--budget", "many"], "invalid int value: 'many'", 2),
    ("solve-temp-nan", ["solve", "x", "--temperature", "nan"], "temperature must be a finite", 2),
    ("solve-temp-inf", ["solve", "x", "--temperature", "inf"], "temperature must be a finite", 2),
    ("solve-temp-neg", ["solve", "x", "--temperature", "-1"], "temperature must be a finite", 2),
    ("solve-policy", ["solve", "x", "--policy", "/no/such/model"], "does not exist", 2),
    (
        "solve-prm-path",
        ["solve", "x", "--policy", "{ckpt}", "--prm", "/no/such/prm"],
        "prm model path '/no/such/prm' does not exist",
        2,
    ),
    (
        "solve-prm-family",
        ["solve", "x", "--policy", "{ckpt}", "--prm", "nofamily:x"],
        "unknown PRM family 'nofamily'",
        2,
    ),
    (
        "solve-too-long",
        ["solve", LONG, "--policy", "{ckpt}", "--strategy", "greedy"],
        "longer than the policy's context",
        2,
    ),
    ("solve-flag", ["solve", "x", "--nonsense"], "unrecognized arguments: --nonsense", 2),
    ("solve-missing", ["solve"], "the following arguments are required: problem", 2),
    # ---- bench: suites, keys, types, values
    ("bench-suite", ["bench", "no_such_suite"], "unknown suite 'no_such_suite'", 2),
    ("bench-suite-typo", ["bench", "arth"], "(did you mean 'arith'?)", 2),
    ("bench-suite-file", ["bench", "{tmp}/missing.toml"], "missing.toml does not exist", 2),
    ("bench-two-suites", ["bench", "arith", "--suite", "gsm8k"], "two suites given", 2),
    ("bench-toml", ["bench", "{tmp}/bad.toml"], "bad.toml: invalid TOML", 2),
    ("bench-toml-utf8", ["bench", "{tmp}/bad_utf8.toml"], "bad_utf8.toml: not UTF-8 text", 2),
    ("bench-key", ["bench", "{tmp}/typo.toml"], "unknown key(s) ['budget'] (did you mean", 2),
    ("bench-type", ["bench", "{tmp}/wrongtype.toml"], "limit must be an int or None", 2),
    ("bench-set-key", ["bench", "arith", "--set", "limt=3"], "unknown key(s) ['limt']", 2),
    ("bench-set-form", ["bench", "arith", "--set", "limit"], "--set expects key=value", 2),
    ("bench-set-type", ["bench", "arith", "--set", 'limit="five"'], "got 'five'", 2),
    (
        "bench-strategy",
        ["bench", "arith", "--strategies", "greedy,nope"],
        "unknown strategy 'nope'",
        2,
    ),
    (
        "bench-strategy-option",
        ["bench", "arith", "--set", 'strategy_options={"beam": {"widht": 2}}'],
        "unknown option(s) ['widht']",
        2,
    ),
    (
        "bench-needs-prm",
        ["bench", "arith", "--strategies", "greedy,beam", "--prms", "none"],
        "strategy 'beam' needs a PRM, and prms is ['none']",
        2,
    ),
    ("bench-budget-0", ["bench", "arith", "--budgets", "0"], "budgets must be integers >= 1", 2),
    ("bench-budget-text", ["bench", "arith", "--budgets", "4,x"], "bad comma-separated list", 2),
    ("bench-budget-dup", ["bench", "arith", "--budgets", "4,4"], "budgets has duplicates", 2),
    ("bench-temp-nan", ["bench", "arith", "--temperature", "nan"], "NaN is no value", 2),
    ("bench-temp-inf", ["bench", "arith", "--temperature", "inf"], "temperature must be >= 0", 2),
    ("bench-temp-neg", ["bench", "arith", "--temperature", "-1"], "temperature must be >= 0", 2),
    ("bench-aggregation", ["bench", "arith", "--aggregations", "max"], "unknown aggregation", 2),
    ("bench-backend", ["bench", "arith", "--backend", "tpu"], "invalid choice: 'tpu'", 2),
    ("bench-limit-0", ["bench", "arith", "--limit", "0"], "limit must be >= 1", 2),
    ("bench-limit-text", ["bench", "arith", "--limit", "some"], "expected an integer or 'all'", 2),
    ("bench-offset", ["bench", "arith", "--offset", "-1"], "offset must be >= 0", 2),
    ("bench-batch", ["bench", "arith", "--batch-size", "0"], "batch_size must be >= 1", 2),
    ("bench-dataset", ["bench", "arith", "--dataset", "gsm9k"], "unknown dataset 'gsm9k'", 2),
    ("bench-format", ["bench", "arith", "--step-format", "nosuch"], "unknown step format", 2),
    (
        "bench-format-file",
        ["bench", "arith", "--step-format", "{tmp}/fmt_key.toml"],
        "unknown StepFormat field(s) ['delimeter']",
        2,
    ),
    ("bench-policy", ["bench", "arith", "--policy", "/no/such/model"], "does not exist", 2),
    (
        "bench-prm",
        ["bench", "arith", "--policy", "{ckpt}", "--prms", "/no/such/prm", "--out", "{tmp}/o1"],
        "does not exist",
        2,
    ),
    # ---- bench: data files and output directories
    (
        "bench-no-data",
        ["bench", "gsm8k", "--data-dir", "{tmp}/nodata", "--out", "{tmp}/o2"],
        "file not found:",
        2,
    ),
    (
        "bench-malformed-line",
        ["bench", "gsm8k", "--data-dir", "{tmp}/malformed", "--out", "{tmp}/o3"],
        "gsm8k/test.jsonl line 2: malformed JSON",
        2,
    ),
    (
        "bench-bad-record",
        ["bench", "gsm8k", "--data-dir", "{tmp}/noanswer", "--out", "{tmp}/o4"],
        "line 2: field 'answer' has no final '#### N' line",
        2,
    ),
    (
        "bench-data-utf8",
        ["bench", "gsm8k", "--data-dir", "{tmp}/badutf8", "--out", "{tmp}/o5"],
        "line 2: not valid UTF-8",
        2,
    ),
    (
        "bench-data-surrogate",
        ["bench", "gsm8k", "--data-dir", "{tmp}/surrogate", "--out", "{tmp}/o6"],
        "line 2: field 'question' is not valid Unicode text",
        2,
    ),
    (
        "bench-every-prompt-fails",
        ["bench", "{tmp}/chat.toml", "--out", "{tmp}/o7", "--quiet"],
        "cannot take the prompt of any of the 2 problems",
        2,
    ),
    (
        "bench-out-is-a-file",
        ["bench", "arith", "--policy", "{ckpt}", "--prms", "none", "--strategies", "greedy"]
        + ["--out", "{tmp}/afile"],
        "cannot write to the output directory",
        2,
    ),
    # ---- label
    ("label-samples", ["label", "--samples", "0"], "samples must be >= 1", 2),
    ("label-rollouts", ["label", "--rollouts", "-2"], "rollouts must be >= 1", 2),
    ("label-problems", ["label", "--problems", "0"], "problems must be >= 1", 2),
    ("label-config", ["label", "--config", "{tmp}/none.toml"], "none.toml does not exist", 2),
    ("label-key", ["label", "--config", "{tmp}/label_typo.toml"], "(did you mean 'samples'?)", 2),
    (
        "label-policy",
        ["label", "--policy", "/no/such/model", "--out", "{tmp}/l1.jsonl", "--problems", "1"],
        "policy model path '/no/such/model' does not exist",
        2,
    ),
    (
        "label-corrupt-out",
        ["label", "--policy", "{ckpt}", "--out", "{tmp}/labels.jsonl", "--problems", "1"],
        "labels.jsonl:1: field 'problem': missing",
        2,
    ),
    # ---- train-policy
    ("policy-steps-neg", ["train-policy", "--steps", "-5"], "steps must be >= 1", 2),
    ("policy-steps-0", ["train-policy", "--steps", "0"], "steps must be >= 1", 2),
    ("policy-steps-text", ["train-policy", "--steps", "many"], "invalid int value", 2),
    ("policy-threads", ["train-policy", "--threads", "0"], "threads must be >= 1", 2),
    ("policy-lr-nan", ["train-policy", "--config", "{tmp}/policy_nan.toml"], "NaN is no value", 2),
    (
        "policy-lr-type",
        ["train-policy", "--config", "{tmp}/policy_str.toml"],
        "lr must be a number (float), got 'fast'",
        2,
    ),
    ("policy-config", ["train-policy", "--config", "{tmp}/none.toml"], "does not exist", 2),
    # ---- train-prm
    ("prm-epochs-0", ["train-prm", "--epochs", "0"], "epochs must be > 0.0", 2),
    ("prm-epochs-neg", ["train-prm", "--epochs", "-1"], "epochs must be > 0.0", 2),
    ("prm-epochs-nan", ["train-prm", "--epochs", "nan"], "NaN is no value", 2),
    ("prm-eta", ["train-prm", "--eta", "-1"], "eta must be >= 0", 2),
    ("prm-label", ["train-prm", "--label", "nope"], "unknown label kind 'nope'", 2),
    ("prm-kind", ["train-prm", "--kind", "nope"], "invalid choice: 'nope'", 2),
    ("prm-threads", ["train-prm", "--threads", "0"], "threads must be >= 1", 2),
    (
        "prm-groups",
        ["train-prm", "--config", "{tmp}/prm_groups.toml"],
        "evidence_groups ['tokens'] must be a non-empty list",
        2,
    ),
    (
        "prm-cross-kind",
        ["train-prm", "--config", "{tmp}/prm_cross.toml"],
        "'extra_layers' is an option of kind 'lm'",
        2,
    ),
    (
        "prm-no-data",
        ["train-prm", "--data", "{tmp}/none.jsonl", "--base", "{ckpt}", "--out", "{tmp}/p1"],
        "none.jsonl: no such file",
        2,
    ),
    (
        "prm-bad-data",
        ["train-prm", "--data", "{tmp}/labels.jsonl", "--base", "{ckpt}", "--out", "{tmp}/p2"],
        "labels.jsonl:1: field 'problem': missing",
        2,
    ),
    # ---- eval-prm
    ("eval-samples", ["eval-prm", "--samples", "0"], "--samples must be >= 1", 2),
    ("eval-limit", ["eval-prm", "--limit", "-1"], "--limit must be >= 1", 2),
    ("eval-threshold", ["eval-prm", "--threshold", "nan"], "--threshold must be in [0, 1]", 2),
    ("eval-suite", ["eval-prm", "--suite", "nope"], "invalid choice: 'nope'", 2),
    ("eval-prm", ["eval-prm", "--prm", "/no/such/prm"], "does not exist", 2),
    (
        "eval-subset",
        ["eval-prm", "--suite", "processbench", "--prm", "equation-checker", "--subsets", "x"],
        "unknown ProcessBench subset 'x'",
        2,
    ),
    (
        "eval-no-data",
        ["eval-prm", "--suite", "processbench", "--prm", "equation-checker"]
        + ["--data-dir", "{tmp}/nodata"],
        "file not found:",
        2,
    ),
    # ---- the command itself
    ("no-command", [], "the following arguments are required: command", 2),
    ("bad-command", ["sovle"], "invalid choice: 'sovle'", 2),
    ("strategies-extra", ["strategies", "extra"], "unrecognized arguments: extra", 2),
]


@pytest.mark.parametrize(
    ("args", "fragment", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gives_one_error_line(args, fragment, code, env, capsys, monkeypatch):
    monkeypatch.delenv("REASONER_DATA", raising=False)
    monkeypatch.chdir(env["tmp"])  # default output dirs (runs/...) land here, never in the repo
    try:
        got = main(expand(args, env))
    except SystemExit as exit_:  # argparse
        got = exit_.code
    err = capsys.readouterr().err
    assert got == code, err
    assert err.startswith("reasoner: error:") and err.count("\n") == 1, err
    assert fragment in err, err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# Real subprocesses: the exit code and stderr a shell sees
# ----------------------------------------------------------------------------------------------


def run_cli(
    args: list[str | bytes], cwd: Path, module: bool = False
) -> subprocess.CompletedProcess:
    exe = (
        [sys.executable, "-m", "reasoner.cli"]
        if module
        else [str(Path(sys.executable).parent / "reasoner")]
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    environment.pop("REASONER_DATA", None)
    return subprocess.run([*exe, *args], cwd=cwd, env=environment, capture_output=True, timeout=120)


SUBPROCESS_CASES = [
    ("empty", ["solve", ""], b"problem text is empty"),
    ("invalid-utf8", ["solve", b"\xff\xfe"], b"not valid UTF-8 text (byte 0xff at offset 0)"),
    ("utf8-then-bad", ["solve", "Ann has 2 €".encode() + b"\xc3"], b"byte 0xc3 at offset 13"),
    ("bad-flag", ["bench", "arith", "--budgets", "x"], b"bad comma-separated list"),
    ("steps", ["train-policy", "--steps", "-5"], b"steps must be >= 1"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES]
)
def test_real_process_exit_code_and_one_stderr_line(args, fragment, tmp_path):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.startswith(b"reasoner: error:") and proc.stderr.count(b"\n") == 1
    assert fragment in proc.stderr and proc.stdout == b""


def test_solve_empty_is_rejected_before_any_model_loads(tmp_path):
    proc = run_cli(["solve", "", "--policy", "/no/such/model"], tmp_path)
    assert b"problem text is empty" in proc.stderr  # not the policy path: checked first


def test_a_decoy_package_in_the_working_directory_is_never_imported(tmp_path):
    """`python -m` (and notebooks, scripts) put the working directory first on sys.path; a
    strategies/ or benchmarks/ folder there must not replace the project's own packages."""
    for name in ("strategies", "benchmarks"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise RuntimeError('decoy {name} imported')")
    listed = run_cli(["strategies"], tmp_path, module=True)
    assert listed.returncode == 0, listed.stderr.decode()[-2000:]
    assert b"decoy" not in listed.stderr and b"beam" in listed.stdout
    bench = run_cli(["bench", "no_such_suite"], tmp_path, module=True)
    assert bench.returncode == 2 and b"unknown suite 'no_such_suite'" in bench.stderr


# ----------------------------------------------------------------------------------------------
# Python calls
# ----------------------------------------------------------------------------------------------


def test_python_api_bad_inputs(env, tmp_path):
    from benchmarks.config import BenchConfig
    from reasoner.datasets import load_dataset
    from reasoner.training.records import read_records

    with pytest.raises(ReasonerError, match="gsm8k/test.jsonl line 2: malformed JSON"):
        load_dataset("gsm8k", "test", data_dir=env["tmp"] / "malformed")
    with pytest.raises(ReasonerError, match=r"labels.jsonl:1: field 'problem': missing"):
        read_records(env["tmp"] / "labels.jsonl")
    with pytest.raises(ReasonerError, match="temperature must be a number"):
        BenchConfig.from_dict({"temperature": float("nan")})
    with pytest.raises(ReasonerError, match="budgets must be a list of ints"):
        BenchConfig.from_dict({"budgets": [1.5]})


def test_a_lone_surrogate_in_a_python_problem_is_a_clear_error(env):
    from reasoner import Reasoner

    r = Reasoner(strategy="greedy", policy=str(env["ckpt"]), prm=None)
    with pytest.raises(ReasonerError, match="not valid Unicode"):
        r.solve("Ann has \ud800 pens")
    [sol] = r.solve_batch(["Ann has \ud800 pens"])
    assert sol.error and "not valid Unicode" in sol.error


def test_odd_but_valid_input_runs(env, tmp_path, capsys, monkeypatch):
    """A suite and a data file written with a byte-order mark run like any other."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    good = json.dumps({"question": "Ann has 2 pens. How many?", "answer": "w\n#### 2"})
    (data / "test.jsonl").write_bytes(b"\xef\xbb\xbf" + f"{good}\n{good}\n".encode())
    suite = tmp_path / "bom.toml"
    suite.write_bytes(
        b"\xef\xbb\xbf"
        + (
            f'dataset = "gsm8k"\npolicy = "{env["ckpt"]}"\nprms = ["none"]\n'
            f'strategies = ["greedy"]\npolicy_options = {{ threads = 1 }}\n'
        ).encode()
    )
    args = [str(suite), "--data-dir", str(tmp_path / "data"), "--out", "o", "--quiet"]
    assert main(["bench", *args]) == 0, capsys.readouterr().err
    assert "bom: gsm8k test, 2 problems" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "o")


def test_install_refuses_an_unfinished_checkpoint_and_swaps_whole(env, tmp_path, monkeypatch):
    from reasoner.training import install

    slot = tmp_path / "embedded" / "policy"
    slot.mkdir(parents=True)
    (slot / "config.json").write_text("{}")  # the installed model
    monkeypatch.setattr(install, "embedded_dir", lambda kind: slot)
    half = tmp_path / "half"  # a run killed before it wrote its last file
    shutil.copytree(env["ckpt"], half)
    (half / "step_format.json").unlink()
    with pytest.raises(
        ReasonerError,
        match=r"not installing .*half as the embedded policy: it lacks step_format.json",
    ):
        install.install_embedded(half, "policy")
    assert (slot / "config.json").read_text() == "{}"  # untouched
    with pytest.raises(ReasonerError, match="unknown embedded slot 'polcy'"):
        install.install_embedded(env["ckpt"], "polcy")
    assert install.install_embedded(env["ckpt"], "policy") == slot
    assert (slot / "model.safetensors").read_bytes() == (
        env["ckpt"] / "model.safetensors"
    ).read_bytes()
    assert sorted(p.name for p in slot.parent.iterdir()) == ["policy"]  # no staging left


FALLBACK_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])  # the decoy directory first, as `python -m` puts the cwd
import reasoner.plugins as plugins
plugins.entry_points = lambda group: []  # a source tree that is not installed
from reasoner.registry import STRATEGIES, available_strategies
names = available_strategies()
print(",".join(names), STRATEGIES.own_entry_points)
"""


def test_the_source_tree_fallback_scans_the_package_beside_reasoner_only_when_needed(tmp_path):
    from reasoner.plugins import PluginRegistry

    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "__init__.py").write_text("raise RuntimeError('decoy imported')")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", FALLBACK_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names, own = proc.stdout.split()
    assert {"beam", "best_of_n", "greedy"} <= set(names.split(",")) and own == "0"
    # installed (this checkout is): the entry points are used and no folder is scanned
    scanned = []
    registry = PluginRegistry("reasoner.strategies", "strategy", fallback=scanned.append)
    assert "beam" in registry.names() and registry.own_entry_points > 0 and scanned == []

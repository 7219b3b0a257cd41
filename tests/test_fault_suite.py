"""The fault suite: kill -9 at random points of label, train-prm, train-policy and bench, rerun
the same command, and compare its outputs byte for byte (timing fields aside) with an
uninterrupted run's. Marked slow; the kill points come from fixed seeds.

The killed run is a real `reasoner` process; the reference and resumed runs call the CLI in
this process (no start-up cost). Every model and job is tiny, and on one thread.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import jsonl_without_timing as jsonl
from conftest import short_step_checkpoint, without_timing

from reasoner.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return short_step_checkpoint(tmp_path_factory.mktemp("fault") / "ckpt")


def run_in_process(args: list[str]) -> None:
    """The command through the CLI in this process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "removing a truncated last line"
        assert main(args) == 0


def cut_at_random_byte(path: Path, seed: int) -> None:
    """Cut an append-only file to a random prefix: every prefix is what some kill -9 leaves (a
    kill mid-write included), however fast the writes that a poll cannot catch between."""
    data = path.read_bytes() if path.exists() else b""
    path.write_bytes(data[: random.Random(seed).randint(0, len(data))])


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def kill_at_random_point(args: list[str], cwd: Path, watch: Path, total: int, seed: int) -> None:
    """Run the command as a process and kill -9 it at a random point of its progress: once
    `watch` holds a random number of lines in [0, total) (an uninterrupted run writes `total`),
    at once or a random few milliseconds later (it may have finished: a rerun copes)."""
    rng = random.Random(seed)
    target = rng.randrange(total)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasoner.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 90
    while (not watch.exists() or lines(watch) < target) and proc.poll() is None:
        assert time.time() < deadline, "the killed run made no progress"
        time.sleep(0.005)
    time.sleep(rng.choice([0.0, rng.uniform(0.0, 0.05)]))  # at once: mid-write, often
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]


@pytest.mark.parametrize("seed", SEEDS)
def test_label(ckpt, tmp_path, seed):
    def args(out: Path) -> list[str]:
        config = out.parent / "label.toml"
        config.write_text(
            f'out = "{out}"\npolicy = "{ckpt}"\nsplit = "test"\nproblems = 6\nsamples = 2\n'
            "rollouts = 2\nchunk = 2\n"
        )
        return ["label", "--config", str(config), "--quiet"]

    (tmp_path / "ref").mkdir()
    (tmp_path / "killed").mkdir()
    run_in_process(args(tmp_path / "ref" / "r.jsonl"))
    killed = tmp_path / "killed" / "r.jsonl"
    kill_at_random_point(args(killed), tmp_path, killed, lines(tmp_path / "ref" / "r.jsonl"), seed)
    run_in_process(args(killed))
    assert killed.read_bytes() == (tmp_path / "ref" / "r.jsonl").read_bytes()
    cut_at_random_byte(killed, seed)  # e.g. between two records of one problem
    run_in_process(args(killed))
    assert killed.read_bytes() == (tmp_path / "ref" / "r.jsonl").read_bytes()


@pytest.mark.parametrize("seed", SEEDS)
def test_train_policy(tmp_path, seed):
    def args(out: Path) -> list[str]:
        config = tmp_path / "policy.toml"
        config.write_text(
            "vocab_size = 300\nhidden_size = 32\nintermediate_size = 64\nnum_layers = 2\n"
            "num_heads = 2\nseq_len = 64\nbatch_size = 4\nsteps = 30\nwarmup_steps = 3\n"
            "train_problems = 200\nsave_every = 4\nlog_every = 3\nthreads = 1\n"
        )
        return ["train-policy", "--config", str(config), "--out", str(out)]

    run_in_process(args(tmp_path / "ref"))
    killed = tmp_path / "killed"
    total = lines(tmp_path / "ref" / "loss.jsonl")
    kill_at_random_point(args(killed), tmp_path, killed / "loss.jsonl", total, seed)
    run_in_process(args(killed))
    for name in ("model.safetensors", "tokenizer.json", "config.json", "step_format.json"):
        assert (killed / "final" / name).read_bytes() == (
            tmp_path / "ref" / "final" / name
        ).read_bytes()
    assert jsonl(killed / "loss.jsonl") == jsonl(tmp_path / "ref" / "loss.jsonl")


def labeled_records(path: Path, n: int = 24) -> Path:
    from reasoner.training.records import LabeledSolution, append_records

    rng = random.Random(0)
    records = []
    for i in range(n):
        good = i % 2 == 0
        a = rng.randint(2, 9)
        steps = [f"Ann has {a} * 2 = {2 * a} apples.", f"So x = {2 * a if good else 2 * a + 1}."]
        outcomes = [[rng.random() for _ in range(3)], [1.0 if good else 0.0]]
        records.append(LabeledSolution(f"p{i}", f"How many {i}?", "5", steps, outcomes, good, None))
    append_records(path, records)
    return path


@pytest.mark.parametrize("seed", SEEDS)
def test_train_prm_evidence(ckpt, tmp_path, seed):
    data = labeled_records(tmp_path / "records.jsonl")

    def args(out: Path) -> list[str]:
        config = tmp_path / "prm.toml"
        config.write_text(
            f'kind = "evidence"\ndata = "{data}"\nbase = "{ckpt}"\nepochs = 40.0\n'
            "batch_size = 8\nwarmup_steps = 2\nval_fraction = 0.25\neval_every = 3\n"
            "save_every = 5\nthreads = 1\n"
        )
        return ["train-prm", "--config", str(config), "--out", str(out), "--quiet"]

    run_in_process(args(tmp_path / "ref"))
    killed = tmp_path / "killed"
    total = lines(tmp_path / "ref" / "log.jsonl")
    kill_at_random_point(args(killed), tmp_path, killed / "log.jsonl", total, seed)
    run_in_process(args(killed))
    for name in ("head.safetensors", "evidence_prm.json"):
        assert (killed / "final" / name).read_bytes() == (
            tmp_path / "ref" / "final" / name
        ).read_bytes()
    assert jsonl(killed / "log.jsonl") == jsonl(tmp_path / "ref" / "log.jsonl")


@pytest.mark.parametrize("seed", SEEDS)
def test_bench(ckpt, tmp_path, seed):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        f'name = "tiny"\ndataset = "arith"\nlimit = 6\npolicy = "{ckpt}"\nprms = ["{ckpt}"]\n'
        "policy_options = { threads = 1 }\nprm_options = { threads = 1 }\n"
        'strategies = ["greedy", "majority", "best_of_n", "beam"]\nbudgets = [2, 4]\n'
        "subsample = true\nbatch_size = 2\nstrategy_options = { beam = { width = 2 } }\n"
    )

    def args(out: Path) -> list[str]:
        return ["bench", str(suite), "--out", str(out), "--quiet"]

    run_in_process(args(tmp_path / "ref"))
    killed = tmp_path / "killed"
    total = lines(tmp_path / "ref" / "results.jsonl")
    kill_at_random_point(args(killed), tmp_path, killed / "results.jsonl", total, seed)
    run_in_process(args(killed))
    cut_at_random_byte(killed / "results.jsonl", seed)
    run_in_process(args(killed))
    for name in ("results.jsonl", "samples.jsonl"):
        assert jsonl(killed / name) == jsonl(tmp_path / "ref" / name), name
    summary = [json.loads((d / "summary.json").read_text()) for d in (killed, tmp_path / "ref")]
    assert without_timing(summary[0]["cells"]) == without_timing(summary[1]["cells"])

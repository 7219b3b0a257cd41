"""PRM training under torchrun (DDP, gloo on CPU): two processes follow one process's loss curve
at the same global batch, rank 0 alone writes the run's files, and a run killed with SIGKILL
resumes under torchrun to the same curve and weights.

Tolerance: every logged loss and every weight within 1e-4 (absolute) of the one-process run's;
the two runs differ only in float summation order (a batch cut in two, gradients all-reduced).
The torchrun runs are real `torchrun --nproc_per_node 2` subprocesses on a tiny model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_checkpoint

from reasoner.cli import main
from reasoner.training.distributed import World, check_batch
from reasoner.training.records import LabeledSolution, append_records
from reasoner.types import ReasonerError

TOL = 1e-4
TORCHRUN = Path(sys.executable).with_name("torchrun")


# ---- fast: the rank helpers --------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 5, 16, 17])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shards_cover_the_global_batch_in_order(n, size):
    items = list(range(n))
    parts = [World(rank, size).shard(items) for rank in range(size)]
    assert sum(parts, []) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_world_of_one_is_the_identity():
    world = World()
    loss = torch.tensor([0.5, 1.5, 2.5]).sum()
    assert world.global_mean(loss, 3).item() == pytest.approx(1.5)
    model = torch.nn.Linear(2, 1)
    assert world.sum(loss) is loss and world.wrap(model) is model and world.is_main


def test_a_global_batch_smaller_than_the_world_is_refused():
    with pytest.raises(ReasonerError, match="batch_size 1 is smaller than the 2 processes"):
        check_batch(World(0, 2), 1)
    check_batch(World(0, 2), 2)


# ---- slow: real torchrun processes -------------------------------------------------------------
def _records(n: int = 48) -> list[LabeledSolution]:
    """Step 2 is right ('= 5') or wrong ('= 7'), with soft rollout outcomes before it."""
    out = []
    for i in range(n):
        good = i % 2 == 0
        steps = [f"Ann has {2 + i % 5} apples.", "So x = 5." if good else "So x = 7."]
        first = [1.0, 0.0, 1.0, float(i % 3 == 0)]
        out.append(
            LabeledSolution(
                f"p{i}", "How many?", "5", steps, [first, [float(good)]], good, -1 if good else 1
            )
        )
    return out


def _config(tmp: Path, base: Path, data: Path, name: str) -> Path:
    """An LM PRM run of 30 steps (global batch 8) logging every step, checkpointing every 5."""
    text = f"""
kind = "lm"
base = "{base}"
data = "{data}"
out_dir = "{tmp / name}"
label = "er"
eta = 2.0
epochs = 6.0
batch_size = 8
lr = 3e-3
warmup_steps = 3
eval_every = 1
save_every = 5
val_fraction = 0.25
lm_loss_weight = 0.5
threads = 1
"""
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _torchrun(config: Path) -> list[str]:
    return [str(TORCHRUN), "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
            "-m", "reasoner.cli", "train-prm", "--config", str(config), "--quiet"]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    base = build_tiny_checkpoint(tmp / "base")
    data = tmp / "records.jsonl"
    append_records(data, _records())
    return tmp, base, data


@pytest.mark.slow
def test_two_processes_follow_one_and_a_killed_run_resumes(setup):
    tmp, base, data = setup
    threads = torch.get_num_threads()
    try:  # the reference: one process, through the same command line
        assert main(["train-prm", "--config", str(_config(tmp, base, data, "one")), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    one = _log(tmp / "one")
    assert [r["step"] for r in one] == list(range(1, 31))

    # two processes, killed (SIGKILL, the whole torchrun group) after their first checkpoint
    out = tmp / "two"
    config = _config(tmp, base, data, "two")
    proc = subprocess.Popen(_torchrun(config), env=_env(), start_new_session=True)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "final").exists(), "killed too late"
    assert len(_log(out)) < 30
    # rerun the same command: it resumes from the checkpoint and finishes
    done = subprocess.run(_torchrun(config), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    two = _log(out)

    # rank 0 alone wrote: one log record per step, the files of a one-process run
    assert [r["step"] for r in two] == list(range(1, 31))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp / "one").iterdir())
    summary = json.loads((out / "final" / "prm_training.json").read_text())
    assert summary["processes"] == 2
    # the same curve as one process at the same global batch (train loss: BCE + 0.5 LM loss)
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=TOL), a["step"]
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=TOL), a["step"]
    assert one[-1]["train_loss"] < one[0]["train_loss"] - 0.1  # it learned: the curve has shape
    # and the same weights after the last step (the checkpoints hold the unwrapped model)
    w1 = torch.load(tmp / "one" / "checkpoint.pt", weights_only=True)["model"]
    w2 = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.allclose(w1[key], w2[key], atol=TOL, rtol=0), key


@pytest.mark.slow
def test_an_evidence_prm_trains_the_same_on_two_processes(setup):
    """Rank 0 computes the base's features (the others wait, then read its cache); the head's
    curve on two processes is one process's."""
    tmp, base, data = setup
    logs = {}
    for name in ("ev-one", "ev-two"):
        config = tmp / f"{name}.toml"
        config.write_text(
            f'kind = "evidence"\nbase = "{base}"\ndata = "{data}"\nout_dir = "{tmp / name}"\n'
            "epochs = 5.0\nbatch_size = 8\nlr = 1e-2\nwarmup_steps = 3\neval_every = 1\n"
            'val_fraction = 0.25\nthreads = 1\nevidence_groups = ["token"]\n'
        )
        if name == "ev-one":
            threads = torch.get_num_threads()
            try:
                assert main(["train-prm", "--config", str(config), "--quiet"]) == 0
            finally:
                torch.set_num_threads(threads)
        else:
            done = subprocess.run(_torchrun(config), env=_env(), capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-3000:]
        logs[name] = _log(tmp / name)
    one, two = logs["ev-one"], logs["ev-two"]
    assert [r["step"] for r in two] == [r["step"] for r in one] and len(one) > 10
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=TOL), a["step"]
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=TOL), a["step"]
    names = sorted(p.name for p in (tmp / "ev-two").iterdir())
    assert names == sorted(p.name for p in (tmp / "ev-one").iterdir())
    assert "features.pt" in names

"""`--executor ray` on a real local Ray cluster (2 CPUs, started once for this module): the same
records and rows as the local executor, a killed worker or driver, and the bad-input errors.

Every model is the tiny checkpoint, on one torch thread per worker; problem counts are tiny.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import jsonl_without_timing as jsonl
from conftest import short_step_checkpoint

from reasoner.cli import main
from reasoner.scaleout import ExecutorSpec, make_executor
from reasoner.training.labeling import LabelConfig, run_labeling
from reasoner.types import ReasonerError

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_torch_thread")]
ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="module")
def cluster():
    """A real Ray cluster on this machine; the tests' executors join it (and leave it running)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this file's test jobs
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return short_step_checkpoint(tmp_path_factory.mktemp("scaleout") / "ckpt")


def label_toml(ckpt: Path, out: Path, policy: str | None = None) -> Path:
    config = out.parent / "label.toml"
    out.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'out = "{out}"\npolicy = "{policy or ckpt}"\nsplit = "test"\nproblems = 6\n'
        "samples = 2\nrollouts = 2\nchunk = 2\n"
    )
    return config


def run_cli(args: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "removing a truncated last line"
        assert main(args) == 0


@pytest.fixture(scope="module")
def reference(ckpt, tmp_path_factory) -> bytes:
    """The local executor's labels of 6 problems in 3 chunks."""
    out = tmp_path_factory.mktemp("ref") / "r.jsonl"
    run_cli(["label", "--config", str(label_toml(ckpt, out)), "--quiet"])
    return out.read_bytes()


def throughput(out: Path) -> list[dict]:
    path = out.parent / (out.stem + ".throughput.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("workers", [1, 2])
def test_label_records_on_ray_are_the_local_executors_byte_for_byte(
    cluster, ckpt, reference, tmp_path, workers
):
    out = tmp_path / "r.jsonl"
    cfg = LabelConfig.from_toml(label_toml(ckpt, out))
    with make_executor(ExecutorSpec("ray", workers=workers)) as executor:
        run_labeling(cfg, progress=False, executor=executor)
    assert out.read_bytes() == reference
    stats = throughput(out)
    assert [s["executor"] for s in stats] == ["ray"] * 3
    assert {s["worker"] for s in stats} == set(range(workers))  # the shards were spread


def test_a_worker_killed_mid_shard_is_restarted_and_its_shard_redone_once(
    cluster, ckpt, reference, tmp_path
):
    out = tmp_path / "r.jsonl"
    cfg = LabelConfig.from_toml(label_toml(ckpt, out))
    with make_executor(ExecutorSpec("ray", workers=1)) as executor:

        def kill_after_the_first_shard(stats) -> None:
            if stats.index == 0:  # the actor holds shard 1 (running) and shard 2 now
                os.kill(stats.pid, signal.SIGKILL)

        executor.on_result = kill_after_the_first_shard
        run_labeling(cfg, progress=False, executor=executor)
    assert out.read_bytes() == reference  # every problem once, in order
    pids = [s["pid"] for s in throughput(out)]
    assert pids[1] != pids[0] and pids[2] == pids[1]  # shard 1 ran again, on the restarted actor


def test_a_killed_driver_loses_only_its_shards_in_flight_and_the_rerun_resumes(
    cluster, ckpt, reference, tmp_path
):
    out = tmp_path / "r.jsonl"
    args = ["label", "--config", str(label_toml(ckpt, out)), "--quiet", "--executor", "ray"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "reasoner.cli", *args, "--ray-address", cluster],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 1) and driver.poll() is None:
        assert time.time() < deadline, "the driver wrote nothing"
        time.sleep(0.005)
    driver.send_signal(signal.SIGKILL)
    _, err = driver.communicate()
    assert driver.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]
    assert 0 < len(out.read_bytes()) <= len(reference)
    run_cli(args)  # joins this process's cluster
    assert out.read_bytes() == reference


class DiesEveryTime:
    """A job whose worker process exits in the middle of every shard."""

    def make_worker(self):
        return lambda payload: os._exit(1)


def test_a_worker_that_dies_repeatedly_is_one_error_naming_it(cluster):
    spec = ExecutorSpec("ray", workers=1, max_restarts=1)
    with make_executor(spec) as executor:
        with pytest.raises(
            ReasonerError, match=r"died running shard \d, after the 1 restarts allowed"
        ):
            list(executor.map(DiesEveryTime(), [1, 2]))


@pytest.mark.parametrize(
    "spec, policy, match",
    [
        (ExecutorSpec("ray"), "/nonexistent/ckpt", "Ray worker 0 could not load its engine: "),
        (
            ExecutorSpec("ray", gpus_per_worker=1),
            None,
            "--gpus-per-worker 1 asks for 1 GPUs, but the Ray cluster at .* has 0",
        ),
        (ExecutorSpec("ray", workers=3), None, "asks for 3 CPUs, but the Ray cluster"),
    ],
)
def test_a_worker_that_cannot_start_is_one_error_and_the_output_is_intact(
    cluster, ckpt, reference, tmp_path, spec, policy, match
):
    out = tmp_path / "r.jsonl"
    partial = reference[: reference.index(b"\n") + 1]
    out.write_bytes(partial)
    cfg = LabelConfig.from_toml(label_toml(ckpt, out, policy))
    with make_executor(spec) as executor:
        with pytest.raises(ReasonerError, match=match):
            run_labeling(cfg, progress=False, executor=executor)
    assert out.read_bytes() == partial and sorted(p.name for p in tmp_path.iterdir()) == [
        "label.toml",
        "r.jsonl",
    ]


def test_bench_rows_on_two_ray_workers_are_the_local_runs(cluster, ckpt, tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        f'name = "tiny"\ndataset = "arith"\nlimit = 4\npolicy = "{ckpt}"\nprms = ["{ckpt}"]\n'
        "policy_options = { threads = 1 }\nprm_options = { threads = 1 }\n"
        'strategies = ["greedy", "majority", "best_of_n", "beam"]\nbudgets = [2, 4]\n'
        "subsample = true\nbatch_size = 2\nstrategy_options = { beam = { width = 2 } }\n"
    )
    run_cli(["bench", str(suite), "--out", str(tmp_path / "local"), "--quiet"])
    ray_args = ["--executor", "ray", "--workers", "2"]
    run_cli(["bench", str(suite), "--out", str(tmp_path / "ray"), "--quiet", *ray_args])
    for name in ("results.jsonl", "samples.jsonl"):
        assert jsonl(tmp_path / "ray" / name) == jsonl(tmp_path / "local" / name), name
    rows = jsonl(tmp_path / "ray" / "results.jsonl")
    assert len(rows) == 4 * 7 and not any(r["error"] for r in rows)


def test_eval_prm_on_ray_reports_the_local_numbers(cluster, ckpt, tmp_path):
    common = ["eval-prm", "--policy", str(ckpt), "--prm", str(ckpt), "--limit", "4"]
    run_cli([*common, "--samples", "2", "--out", str(tmp_path / "local.json")])
    ray_args = ["--executor", "ray", "--workers", "2"]
    run_cli([*common, "--samples", "2", "--out", str(tmp_path / "ray.json"), *ray_args])
    local = json.loads((tmp_path / "local.json").read_text())
    assert json.loads((tmp_path / "ray.json").read_text()) == local
    assert local["arith"]["n"] == 8

"""The scale-out pieces that need no cluster: sharding, the executor flags, the local executor."""

from __future__ import annotations

import time

import pytest

from reasoner.cli import build_parser, main
from reasoner.scaleout import ExecutorSpec, LocalExecutor, shard, spec_from_args
from reasoner.scaleout.ray_cluster import check_reachable, check_resources
from reasoner.types import ReasonerError


def test_shards_are_consecutive_slices_of_the_items():
    assert shard(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert shard([], 3) == []
    with pytest.raises(ReasonerError, match="at least one item"):
        shard([1], 0)


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--executor", "ray", "--workers", "0"], "--workers must be >= 1, got 0"),
        (["--executor", "ray", "--cpus-per-worker", "0"], "--cpus-per-worker must be"),
        (["--executor", "ray", "--gpus-per-worker", "-1"], "--gpus-per-worker must be"),
        (["--executor", "ray", "--ray-address", " "], "--ray-address is empty"),
        (["--workers", "2"], "only apply to Ray workers; add --executor ray"),
    ],
)
def test_bad_executor_flags_are_one_error(flags, match):
    args = build_parser().parse_args(["label", *flags])
    with pytest.raises(ReasonerError, match=match):
        spec_from_args(args)


@pytest.mark.parametrize("command", ["label", "bench", "eval-prm"])
def test_every_sharded_command_takes_the_executor_flags(command, capsys):
    # --workers 0 is refused before any model loads or any file is written
    assert main([command, "--executor", "ray", "--workers", "0"]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err


def test_the_spec_of_the_flags():
    args = build_parser().parse_args(
        ["bench", "--executor", "ray", "--workers", "3", "--cpus-per-worker", "2"]
    )
    assert spec_from_args(args) == ExecutorSpec(kind="ray", workers=3, cpus_per_worker=2.0)
    assert spec_from_args(build_parser().parse_args(["label"])) == ExecutorSpec()


def test_an_unreachable_address_is_named_at_once():
    with pytest.raises(ReasonerError, match="cannot reach the Ray cluster at --ray-address"):
        check_reachable("127.0.0.1:1")
    with pytest.raises(ReasonerError, match="is not auto or HOST:PORT"):
        check_reachable("nowhere")


def test_label_with_an_unreachable_address_is_one_error_and_writes_nothing(tmp_path, capsys):
    import ray

    assert not ray.is_initialized()  # else the executor would join that cluster instead
    out = tmp_path / "labels" / "r.jsonl"
    args = ["label", "--out", str(out), "--problems", "1", "--executor", "ray"]
    t0 = time.perf_counter()
    assert main([*args, "--ray-address", "127.0.0.1:1"]) == 2
    assert time.perf_counter() - t0 < 30  # not ray.init's minutes of retries
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "cannot reach the Ray cluster at --ray-address 127.0.0.1:1" in err
    )
    assert not (tmp_path / "labels").exists()


def test_more_gpus_or_cpus_than_the_cluster_has_are_refused():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}}]
    total = {"CPU": 2.0, "GPU": 1.0}
    check_resources(total, nodes, ExecutorSpec("ray", workers=1, gpus_per_worker=1), "x")
    with pytest.raises(ReasonerError, match="asks for 2 GPUs, but the Ray cluster at x has 1"):
        check_resources(total, nodes, ExecutorSpec("ray", workers=2, gpus_per_worker=1), "x")
    with pytest.raises(ReasonerError, match="asks for 3 CPUs"):
        check_resources(total, nodes, ExecutorSpec("ray", workers=3), "x")
    two = [{"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}}] * 2
    with pytest.raises(ReasonerError, match="no node of the Ray cluster at x has that many GPUs"):
        check_resources({"CPU": 4, "GPU": 2}, two, ExecutorSpec("ray", gpus_per_worker=2), "x")


class Doubler:
    """A job whose worker is built once and doubles numbers."""

    def __init__(self) -> None:
        self.built = 0

    def make_worker(self):
        self.built += 1
        return lambda xs: [2 * x for x in xs]


def test_the_local_executor_builds_one_worker_and_keeps_shard_order():
    job, seen = Doubler(), []
    with LocalExecutor() as ex:
        ex.on_result = lambda stats: seen.append(stats.index)
        out = [r for r, _ in ex.map(job, [[1, 2], [3]])]
        out += [r for r, _ in ex.map(job, [[4]])]
    assert out == [[2, 4], [6], [8]] and job.built == 1 and seen == [0, 1, 0]

"""Scale-out on this machine: labeling and bench throughput with the local executor vs Ray with 1
and 2 workers (1 torch thread each), the Ray overhead per shard, and whether outputs are identical.

One local Ray cluster (num_cpus=2) is started for the whole run; every configuration runs the same
job into a fresh directory. Wall time includes each Ray run's worker start (engine load), which is
also timed on its own. CPU seconds are this process's plus its Ray workers' (Ray's own raylet and GCS
processes are not counted), read before the workers are released.

Usage: python -m benchmarks.perf_scaleout [--problems 8] [--bench-limit 8]
Writes benchmarks/results/scaleout/perf_scaleout.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch

from benchmarks.bench.run import run_bench
from benchmarks.bench.shard_worker import BenchJob
from benchmarks.config import BenchConfig
from reasoner.scaleout import Executor, ExecutorSpec, make_executor
from reasoner.training.labeling import LabelConfig, LabelJob, run_labeling

TIMING = {"seconds", "wall_seconds", "tokens_per_s", "seconds_mean", "seconds_median"}
EXECUTORS = {
    "local": ExecutorSpec(),
    "ray-1": ExecutorSpec("ray", workers=1),
    "ray-2": ExecutorSpec("ray", workers=2),
}


def worker_cpu_seconds(executor: Executor) -> float:
    """User + system CPU seconds of the executor's live Ray workers (0 for local): they were
    started for this run, so this is all their work, engine load included."""
    pool = getattr(executor, "pool", None)
    total = 0.0
    for pid in pool.pids if pool is not None else []:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:  # ended meanwhile
            pass
    return total


def timed(run: Callable[[Executor], Any], spec: ExecutorSpec) -> dict[str, float]:
    """Wall and CPU seconds (this process + the workers, read before they are released) of
    run(executor)."""
    with make_executor(spec) as executor:
        cpu0, t0 = time.process_time(), time.perf_counter()
        run(executor)
        wall = time.perf_counter() - t0
        driver = time.process_time() - cpu0
        workers = worker_cpu_seconds(executor)
    return {"wall_s": wall, "cpu_s": driver + workers, "driver_cpu_s": driver}


def start_seconds(spec: ExecutorSpec, job: Any) -> float | None:
    """Seconds for the spec's workers to start and load their engines (None: local)."""
    if spec.kind == "local":
        return None
    with make_executor(spec) as executor:
        t0 = time.perf_counter()
        executor.start(job)
        return time.perf_counter() - t0


def jsonl(path: Path) -> list[Any]:
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in TIMING}
        return [strip(x) for x in v] if isinstance(v, list) else v

    return [strip(json.loads(line)) for line in path.read_text().splitlines()]


def label_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reference = None
    for name, spec in EXECUTORS.items():
        cfg = LabelConfig(
            out=str(work / f"label-{name}" / "r.jsonl"),
            problems=args.problems,
            samples=2,
            rollouts=4,
            chunk=2,
            offset=40000,  # train problems the shipped labels do not use
            policy_options={"threads": 1},
        )
        start = start_seconds(spec, LabelJob(cfg, True))
        times = timed(lambda ex, cfg=cfg: run_labeling(cfg, progress=False, executor=ex), spec)
        path = Path(cfg.out)
        log = [
            json.loads(line)
            for line in path.with_suffix(".throughput.jsonl").read_text().split("\n")
            if line
        ]
        tokens = sum(s["new_tokens"] for s in log)
        data = path.read_bytes()
        reference = reference if reference is not None else data
        out[name] = {
            **times,
            "worker_start_s": start,
            "new_tokens": tokens,
            "tokens_per_s": tokens / times["wall_s"],
            "problems_per_s": args.problems / times["wall_s"],
            "shards": len(log),
            "shard_seconds_median": statistics.median(s["seconds"] for s in log),
            # submission to result minus the shard's compute: queueing behind the actor's
            # previous shard (two are in flight) plus transfer; not Ray's own cost (see overhead)
            "wait_per_shard_median_s": statistics.median(s["waited"] for s in log),
            "records_identical_to_local": data == reference,
        }
    return out


def bench_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reference = None
    for name, spec in EXECUTORS.items():
        cfg = BenchConfig(
            name="scaleout",
            dataset="arith",
            limit=args.bench_limit,
            prms=["embedded"],
            strategies=["greedy", "best_of_n", "beam"],
            budgets=[4],
            batch_size=2,
            policy_options={"threads": 1},
            prm_options={"threads": 1},
            subsample=True,  # best_of_n from one sampling run: sampling shards too
            out_dir=str(work / f"bench-{name}"),
        )
        cfg.check()
        start = start_seconds(spec, BenchJob(cfg))
        times = timed(lambda ex, cfg=cfg: run_bench(cfg, progress=False, executor=ex), spec)
        rows = jsonl(Path(cfg.out_dir) / "results.jsonl")
        reference = reference if reference is not None else rows
        out[name] = {
            **times,
            "worker_start_s": start,
            "rows": len(rows),
            "rows_per_s": len(rows) / times["wall_s"],
            "rows_identical_to_local": rows == reference,  # timing fields aside
        }
    return out


class EchoJob:
    """A job that does no work: its shards measure what the executor itself costs."""

    def make_worker(self) -> Callable[[Any], Any]:
        return lambda payload: payload


def overhead_runs(args: argparse.Namespace) -> dict[str, Any]:
    """Ray's cost per shard with no work in it: one shard at a time (latency) and a stream of
    shards with two in flight per worker (what a pipelined pool pays per shard)."""
    from reasoner.synthetic import load_split

    payload = load_split("test")[:8]  # a shard's problems go to the worker and come back
    out: dict[str, Any] = {}
    for workers in (1, 2):
        with make_executor(ExecutorSpec("ray", workers=workers)) as executor:
            job = EchoJob()
            executor.start(job)
            latency = []
            for _ in range(30):
                t0 = time.perf_counter()
                list(executor.map(job, [payload]))
                latency.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            n = sum(1 for _ in executor.map(job, [payload] * args.echo_shards))
            stream = (time.perf_counter() - t0) / n
        out[f"ray-{workers}"] = {
            "one_shard_round_trip_median_s": statistics.median(latency),
            "streamed_seconds_per_shard": stream,
            "shards": n,
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Scale-out on this machine: local vs Ray (1 and 2 workers, 1 torch thread each)",
        "",
        f"{report['machine']}; load before: {report['load_before']}, after: "
        f"{report['load_after']}. Ray cluster start: {report['ray_init_s']:.1f} s. Command: "
        f"`{report['command']}`.",
        "",
        "## Labeling",
        "",
        "| executor | wall s | CPU s | worker start s | new tokens | tok/s | speed-up | "
        "shards | median shard s | median wait/shard s (queue + transfer) | records identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = report["label"]["local"]["wall_s"]
    for name, r in report["label"].items():
        start = "-" if r["worker_start_s"] is None else f"{r['worker_start_s']:.1f}"
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {start} | {r['new_tokens']} | "
            f"{r['tokens_per_s']:.0f} | {base / r['wall_s']:.2f}x | {r['shards']} | "
            f"{r['shard_seconds_median']:.2f} | {r['wait_per_shard_median_s']:.4f} | "
            f"{r['records_identical_to_local']} |"
        )
    lines += [
        "",
        "## Bench (greedy, best_of_n, beam at N=4 with the embedded PRM)",
        "",
        "| executor | wall s | CPU s | worker start s | rows | rows/s | speed-up | "
        "rows identical (timings aside) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = report["bench"]["local"]["wall_s"]
    for name, r in report["bench"].items():
        start = "-" if r["worker_start_s"] is None else f"{r['worker_start_s']:.1f}"
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {start} | {r['rows']} | "
            f"{r['rows_per_s']:.2f} | {base / r['wall_s']:.2f}x | {r['rows_identical_to_local']} |"
        )
    if "overhead" in report:
        lines += [
            "",
            "## Ray overhead per shard (a shard of 8 problems that does no work)",
            "",
            "| executor | one shard's round trip, median s | streamed, s per shard | shards |",
            "|---|---|---|---|",
        ]
        for name, r in report["overhead"].items():
            lines.append(
                f"| {name} | {r['one_shard_round_trip_median_s']:.4f} | "
                f"{r['streamed_seconds_per_shard']:.4f} | {r['shards']} |"
            )
        lines += [
            "",
            f"Measured by `{report['overhead_command']}`, load {report['overhead_load']}.",
        ]
    lines += ["", report["note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--bench-limit", type=int, default=8)
    ap.add_argument("--echo-shards", type=int, default=200)
    ap.add_argument(
        "--parts",
        default="throughput,overhead",
        help="throughput (label and bench, heavy: run under the lock) and/or overhead (light); "
        "a part run alone is merged into the existing JSON",
    )
    ap.add_argument("--out-dir", default="benchmarks/results/scaleout")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    import ray

    out = Path(args.out_dir)
    path = out / "perf_scaleout.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    torch.set_num_threads(1)  # the local executor's one thread, like each Ray worker's
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    ray_init = time.perf_counter() - t0
    try:
        if "throughput" in parts:
            with tempfile.TemporaryDirectory() as tmp:
                report["label"] = label_runs(args, Path(tmp))
                report["bench"] = bench_runs(args, Path(tmp))
            report.update(
                command=f"python -m benchmarks.perf_scaleout --problems {args.problems} "
                f"--bench-limit {args.bench_limit} --parts throughput",
                load_before=load_before,
                load_after=[round(x, 2) for x in os.getloadavg()],
                ray_init_s=ray_init,
            )
        if "overhead" in parts:
            report["overhead"] = overhead_runs(args)
            report["overhead_command"] = (
                f"python -m benchmarks.perf_scaleout --parts overhead --echo-shards "
                f"{args.echo_shards}"
            )
            report["overhead_load"] = [load_before, [round(x, 2) for x in os.getloadavg()]]
    finally:
        ray.shutdown()
    report["machine"] = (
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, ray {ray.__version__}"
    )
    report["note"] = (
        "Wall time includes each Ray run's worker start (engine load in a fresh process). With "
        "2 cores and 1 thread per worker, 2 workers can at best halve the steady-state time; the "
        "driver, Raylet and other jobs on the machine share the same 2 cores."
    )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    (out / "perf_scaleout.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

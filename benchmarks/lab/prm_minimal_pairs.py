"""Can a PRM check a step? Minimal pairs: a right step vs the same step with its result slipped.

For held-out problems (the PRM trainer's validation split of the rollout labels: no PRM trained
here saw them), each pair shares the problem and every earlier step; the last step is either a
step the exact checker accepts or the same step with one equation result corrupted like a carry
slip (reasoner.training.augment). Pair accuracy = share of pairs where the right step scores
higher (ties half; 0.5 = chance). The policy's own step likelihood is the reference row: it shows
the information is in the base model the PRMs are fine-tuned from.

Usage: python -m benchmarks.lab.prm_minimal_pairs --prms name=path,... [--pairs 300]
Output: benchmarks/results/prm_minimal_pairs.{json,md}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.lab.likelihood import step_likelihoods
from benchmarks.lab.pairs import Pair, held_out_pairs, pair_accuracy
from benchmarks.lab.results import write_result
from reasoner.api import load_policy, load_prm
from reasoner.models.base import ScoreRequest


def likelihood_accuracy(policy: Any, pairs: list[Pair], batch: int = 32) -> float:
    """Pair accuracy of the policy's step likelihood (the right and the slipped chains of
    `batch` pairs in one forward pass)."""
    right, wrong = [], []
    for k in range(0, len(pairs), batch):
        chunk = pairs[k : k + batch]
        scores = step_likelihoods(
            policy, [(p, r) for p, r, _ in chunk] + [(p, w) for p, _, w in chunk]
        )
        right += [s[-1] for s in scores[: len(chunk)]]
        wrong += [s[-1] for s in scores[len(chunk) :]]
    return pair_accuracy(right, wrong)


def prm_accuracy(path: str, pairs: list[Pair]) -> float:
    """Pair accuracy of a PRM checkpoint's last-step score."""
    scored, _ = load_prm(path).score([ScoreRequest(p, c) for p, r, w in pairs for c in (r, w)])
    return pair_accuracy([s[-1] for s in scored[0::2]], [s[-1] for s in scored[1::2]])


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        "# Minimal pairs: right step vs the same step with a slipped result (held-out problems)",
        "",
        f"Command: `{report['command']}`; {report['pairs']} pairs. 0.5 = chance.",
        "",
        "| scorer | pair accuracy (last step) |",
        "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in report["pair_accuracy_last_step"].items()],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build the held-out pairs, score them with the policy and each PRM, write --out.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prms", required=True, help="name=path,... (PRM checkpoints)")
    ap.add_argument("--data", default="runs/labels/rollouts.jsonl")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/prm_minimal_pairs")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    pairs = held_out_pairs(args.data, args.pairs, args.seed)
    rows = {"policy likelihood (no training)": likelihood_accuracy(load_policy("embedded"), pairs)}
    for item in args.prms.split(","):
        name, path = item.split("=", 1)
        rows[name] = prm_accuracy(path, pairs)
    report = {
        "command": "python -m benchmarks.lab.prm_minimal_pairs " + " ".join(sys.argv[1:]),
        "pairs": len(pairs),
        "pair_accuracy_last_step": rows,
    }
    write_result(Path(args.out).with_suffix(".json"), report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How well do rollout labels separate right steps from wrong ones? (exact arith ground truth)

For every labeled arith solution with a known first wrong step, compares the mean label of steps
before the first error (right steps) with steps at or after it (wrong steps), for hard, soft and
ER labels at several eta, and the AUC of each label kind against the exact step correctness.

Usage: python -m benchmarks.lab.label_stats [runs/labels/rollouts.jsonl] [--out benchmarks/results/label_stats.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.lab.results import write_result
from reasoner.training.prm_metrics import roc_auc
from reasoner.training.records import LabeledSolution, read_records

KINDS = ["soft", "er-0.5", "er-1", "er-2", "er-5", "er-10", "hard"]


def separation(records: list[LabeledSolution], kind: str) -> dict[str, Any]:
    """Mean label of right vs wrong steps (exact first error) and the label's AUC against them."""
    right, wrong, scores, truth = [], [], [], []
    for r in records:
        # the last step is the solution's own outcome, not a rollout estimate: leave it out
        for i, v in enumerate(r.values(kind)[:-1]):
            ok = r.first_error == -1 or i < r.first_error
            (right if ok else wrong).append(v)
            scores.append(v)
            truth.append(1.0 if ok else 0.0)
    return {
        "mean_right_steps": mean(right) if right else None,
        "mean_wrong_steps": mean(wrong) if wrong else None,
        "gap": (mean(right) - mean(wrong)) if right and wrong else None,
        "auc_vs_exact": roc_auc(scores, truth),
        "right_steps": len(right),
        "wrong_steps": len(wrong),
    }


def main(argv: list[str] | None = None) -> int:
    """Read the labels, compare every label kind with the exact step correctness, write --out."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", nargs="?", default="runs/labels/rollouts.jsonl")
    ap.add_argument("--out", default="benchmarks/results/label_stats.json")
    args = ap.parse_args(argv)
    records = [r for r in read_records(args.data) if r.first_error is not None]
    report: dict = {
        "records": len(records),
        "problems": len({r.problem_id for r in records}),
        "solutions_correct": mean(r.correct for r in records),
        "solutions_without_error": mean(r.first_error == -1 for r in records),
        "kinds": {kind: separation(records, kind) for kind in KINDS},
    }
    write_result(Path(args.out), report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

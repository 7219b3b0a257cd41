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
import json
import sys
from pathlib import Path


def build_pairs(data: str, n: int, seed: int) -> list[tuple[str, list[str], list[str]]]:
    """(problem, right chain, slipped chain) for up to n held-out records."""
    from benchmarks.lab.prm_recipes import minimal_pairs
    from reasoner.training.prm_trainer import split_by_problem
    from reasoner.training.records import read_records

    _, val = split_by_problem(read_records(data), 0.1, 0)  # the trainer's default split
    return minimal_pairs(val, n, seed)


def pair_accuracy(right: list[float], wrong: list[float]) -> float:
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(right, wrong))
    return wins / len(right)


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.lab.er_experiment import step_likelihoods
    from reasoner.api import load_policy, load_prm
    from reasoner.models.base import ScoreRequest

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prms", required=True, help="name=path,... (PRM checkpoints)")
    ap.add_argument("--data", default="runs/labels/rollouts.jsonl")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/prm_minimal_pairs")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    pairs = build_pairs(args.data, args.pairs, args.seed)
    rows = {}
    policy = load_policy("embedded")
    right, wrong = [], []
    for k in range(0, len(pairs), 32):
        chunk = pairs[k : k + 32]
        scores = step_likelihoods(
            policy, [(p, r) for p, r, _ in chunk] + [(p, w) for p, _, w in chunk]
        )
        right += [s[-1] for s in scores[: len(chunk)]]
        wrong += [s[-1] for s in scores[len(chunk) :]]
    rows["policy likelihood (no training)"] = pair_accuracy(right, wrong)
    for item in args.prms.split(","):
        name, path = item.split("=", 1)
        prm = load_prm(path)
        scored, _ = prm.score([ScoreRequest(p, c) for p, r, w in pairs for c in (r, w)])
        rows[name] = pair_accuracy([s[-1] for s in scored[0::2]], [s[-1] for s in scored[1::2]])
    report = {
        "command": "python -m benchmarks.lab.prm_minimal_pairs " + " ".join(sys.argv[1:]),
        "pairs": len(pairs),
        "pair_accuracy_last_step": rows,
    }
    lines = [
        "# Minimal pairs: right step vs the same step with a slipped result (held-out problems)",
        "",
        f"Command: `{report['command']}`; {len(pairs)} pairs. 0.5 = chance.",
        "",
        "| scorer | pair accuracy (last step) |",
        "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in rows.items()],
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the ER experiment measures on its stored solutions: selection accuracy at a budget,
step-level F1 against the exact checker, and within-problem ranking.

The selection rules are the product's (reasoner.search: the rules the majority, best_of_n and
weighted_best_of_n strategies apply), on chain dicts {"steps", "answer", "correct"} with
aggregated step scores (reasoner.aggregation.aggregate).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from statistics import mean
from typing import Any

from reasoner.aggregation import aggregate
from reasoner.prm_eval import first_wrong_step, processbench_metrics
from reasoner.search import best_choice, majority_choice, weighted_choice
from reasoner.step_format import get_step_format
from reasoner.synthetic import first_arithmetic_error, first_error
from reasoner.training.prm_metrics import roc_auc
from reasoner.types import Problem

Chain = dict[str, Any]
Picker = Callable[[list[Chain], list[list[float]]], Chain]
STEP_FORMAT = get_step_format("arith")  # how the arith checker reads a chain's steps


def chain_scores(step_scores: list[list[float]], agg: str) -> list[float]:
    """One aggregated score per chain (a chain without step scores counts as one 0.0 step)."""
    return [aggregate(s or [0.0], agg) for s in step_scores]


def majority(chains: list[Chain], _scores: list[list[float]]) -> Chain:
    """Majority vote over the answers (the first chain when none has an answer)."""
    index, _ = majority_choice([c["answer"] for c in chains])
    return chains[0 if index is None else index]


def best_of_n(agg: str) -> Picker:
    """Best-of-N by the `agg`-aggregated step scores, among the chains that reached an answer."""

    def pick(chains: list[Chain], scores: list[list[float]]) -> Chain:
        return chains[best_choice([c["answer"] for c in chains], chain_scores(scores, agg))]

    return pick


def weighted_best_of_n(agg: str) -> Picker:
    """PRM-weighted vote (the first chain when none has an answer)."""

    def pick(chains: list[Chain], scores: list[list[float]]) -> Chain:
        index, _ = weighted_choice([c["answer"] for c in chains], chain_scores(scores, agg))
        return chains[0 if index is None else index]

    return pick


def checker_vote(chains: list[Chain], _scores: list[list[float]]) -> Chain:
    """Exact equation checker as verifier: majority vote among chains with no false equation."""
    clean = [c for c in chains if first_arithmetic_error(STEP_FORMAT.join_steps(c["steps"])) == -1]
    return majority(clean or chains, [])


def random_sample(chains: list[Chain], _scores: list[list[float]]) -> Chain:
    """No selection: the group's first sample (samples are i.i.d.)."""
    return chains[0]


def group_accuracy(
    samples: list[Chain], scores: list[list[float]], n: int, pick: Picker
) -> tuple[float, float]:
    """Mean accuracy and coverage of `pick` over the disjoint groups of n solutions."""
    groups = range(0, len(samples) - n + 1, n)
    acc = [float(pick(samples[g : g + n], scores[g : g + n])["correct"]) for g in groups]
    cov = [float(any(c["correct"] for c in samples[g : g + n])) for g in groups]
    return mean(acc), mean(cov)


# ---- step-level F1 --------------------------------------------------------------------------------
THRESHOLDS = [round(0.02 * i, 2) for i in range(1, 50)]


def step_f1(
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    scores: dict[str, list[list[float]]] | None,
    per_problem: int = 4,
) -> dict[str, Any]:
    """F1 at threshold 0.5 and at the best threshold of a 0.02 grid (an oracle upper bound:
    ER/soft labels are values, not probabilities of step correctness, so 0.5 is not their cut).
    With scores None, the exact equation checker is the predictor."""
    preds, labels, chains = [], [], []
    for p in problems:
        for j, chain in enumerate(samples[p.id]["samples"][:per_problem]):
            if not chain["steps"]:
                continue
            text = STEP_FORMAT.join_steps(chain["steps"])
            labels.append(first_error(p, text))
            if scores is None:
                preds.append(first_arithmetic_error(text))
            else:
                preds.append(first_wrong_step(scores[p.id][j]))
                chains.append(scores[p.id][j])
    out = {**processbench_metrics(preds, labels), "n": len(labels)}
    if scores is not None:
        best = max(
            (processbench_metrics([first_wrong_step(s, t) for s in chains], labels)["f1"], t)
            for t in THRESHOLDS
        )
        out["best_f1"], out["best_threshold"] = best
    return out


# ---- within-problem ranking ----------------------------------------------------------------------
def chain_hash_scores(
    problems: list[Problem], samples: dict[str, dict[str, Any]]
) -> dict[str, list[list[float]]]:
    """A content-blind control PRM: one uniform score per distinct chain text (so identical chains
    score alike, as with any deterministic PRM), repeated at every step."""
    out = {}
    for p in problems:
        out[p.id] = []
        for chain in samples[p.id]["samples"]:
            text = "\n".join(chain["steps"])  # hash input only (fixes the committed control row)
            u = zlib.crc32(f"{p.id}\n{text}".encode()) / 2**32
            out[p.id].append([u] * max(1, len(chain["steps"])))
    return out


def ranking(
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    scores: dict[str, list[list[float]]],
    per_problem: int = 16,
) -> dict[str, Any]:
    """Pairwise accuracy of a PRM's min and last score over (right, wrong) answered solutions of
    the SAME problem (what best-of-N needs), and AUC of the min score across all problems."""
    pairs: dict[str, list[float]] = {"min": [], "last": []}
    flat, truth = [], []
    for p in problems:
        answered = [
            (c, s)
            for c, s in zip(samples[p.id]["samples"][:per_problem], scores[p.id])
            if c["answer"] is not None and s
        ]
        flat += [min(s) for _, s in answered]
        truth += [c["correct"] for c, _ in answered]
        right = [s for c, s in answered if c["correct"]]
        wrong = [s for c, s in answered if not c["correct"]]
        for agg in ("min", "last"):
            for a in right:
                for b in wrong:
                    x, y = aggregate(a, agg), aggregate(b, agg)
                    pairs[agg].append(float(x > y) + 0.5 * float(x == y))
    return {
        "pair_acc_min": mean(pairs["min"]) if pairs["min"] else float("nan"),
        "pair_acc_last": mean(pairs["last"]) if pairs["last"] else float("nan"),
        "pairs": len(pairs["min"]),
        "auc_across_problems": roc_auc(flat, truth),
    }

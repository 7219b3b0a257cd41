"""Validation metrics of PRM step scores, shared by the LM and the evidence trainers.

Pooled AUC (vs the labels and vs exact step truth) and within-problem pair accuracy, the one
best-of-N needs: a PRM that only learned which problems are hard gets pooled AUC for free.
"""

from __future__ import annotations

from typing import Any


def roc_auc(scores: list[float], labels: list[float]) -> float | None:
    """Area under the ROC curve (ties counted half); None if one class is missing."""
    pos = [s for s, y in zip(scores, labels) if y >= 0.5]
    neg = [s for s, y in zip(scores, labels) if y < 0.5]
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_pos = sum(r for r, y in zip(ranks, labels) if y >= 0.5)
    return (rank_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def pairwise_accuracy(examples: list[dict], chain_scores: list[float]) -> float | None:
    """Share of (correct, wrong) solution pairs of the same problem that the scores order right
    (ties count half): what best-of-N needs, unlike pooled AUC, which problem difficulty inflates."""
    by_problem: dict[str, tuple[list[float], list[float]]] = {}
    for e, s in zip(examples, chain_scores):
        right, wrong = by_problem.setdefault(e["problem"], ([], []))
        (right if e["correct"] else wrong).append(s)
    wins = pairs = 0.0
    for right, wrong in by_problem.values():
        for a in right:
            for b in wrong:
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
                pairs += 1
    return wins / pairs if pairs else None


def step_metrics(
    examples: list[dict],
    scores: list[float],
    targets: list[float],
    truths: list[float | None],
    loss_sum: float,
) -> dict[str, Any]:
    """Validation metrics of flat per-step scores (examples in order, len(e["tags"]) steps each):
    within-problem pair accuracy, loss, step accuracy, AUC vs labels and vs exact step truth."""
    n = max(1, len(scores))
    known = [(s, t) for s, t in zip(scores, truths) if t is not None]
    chains, k = [], 0
    for e in examples:
        chains.append(scores[k : k + len(e["tags"])])
        k += len(e["tags"])
    return {
        "pair_acc_min": pairwise_accuracy(examples, [min(c) if c else 0.0 for c in chains]),
        "pair_acc_last": pairwise_accuracy(examples, [c[-1] if c else 0.0 for c in chains]),
        "loss": loss_sum / n,
        "step_accuracy": sum((s >= 0.5) == (t >= 0.5) for s, t in zip(scores, targets)) / n,
        "auc_vs_labels": roc_auc(scores, [1.0 if t >= 0.5 else 0.0 for t in targets]),
        "auc_vs_exact": roc_auc([s for s, _ in known], [t for _, t in known]) if known else None,
        "steps": len(scores),
    }

"""The answer-selection rules of the best-of-N family, on plain lists and on tree nodes.

The list forms (`majority_choice`, `best_choice`, `weighted_choice`) take answers and aggregated
chain scores, so a lab experiment or a replay can apply exactly the rule a strategy applies; the
node forms (`majority_pick`, `best_pick`, `weighted_pick`) wrap them into a strategy's Pick.
"""

from __future__ import annotations

from collections.abc import Sequence

from reasoner.aggregation import answer_key, vote
from reasoner.search.requests import Pick
from reasoner.search.strategy import SearchContext
from reasoner.tree import Node


def majority_choice(answers: Sequence[str | None]) -> tuple[int | None, dict[str, float]]:
    """Index of the first chain carrying the most voted answer (ties: the answer seen first),
    and the votes per answer key; None when no chain has an answer."""
    votes = vote(answers)
    if not votes:
        return None, votes
    top = max(votes, key=votes.get)  # dicts keep insertion order: ties go to the first seen
    return next(i for i, a in enumerate(answers) if answer_key(a) == top), votes


def best_choice(answers: Sequence[str | None], scores: Sequence[float]) -> int:
    """Index of the highest-scored chain among those with an answer (all, if none has one);
    ties go to the earliest."""
    indices = [i for i, a in enumerate(answers) if a is not None] or list(range(len(scores)))
    return max(indices, key=lambda i: (scores[i], -i))


def weighted_choice(
    answers: Sequence[str | None], scores: Sequence[float]
) -> tuple[int | None, dict[str, float]]:
    """PRM-weighted vote: each chain votes for its answer with its score.

    Returns the index of the winning answer's best-scored chain (ties: the earliest; the winner
    is the answer with the largest total, ties: the first seen) and the total per answer key;
    None when no chain has an answer.
    """
    totals = vote(answers, scores)
    if not totals:
        return None, totals
    top = max(totals, key=totals.get)
    members = [i for i, a in enumerate(answers) if answer_key(a) == top]
    return max(members, key=lambda i: (scores[i], -i)), totals


def majority_pick(leaves: Sequence[Node], reason: str = "finished") -> Pick:
    """Majority vote over the leaves' answers; Pick.score is the winner's vote share."""
    index, votes = majority_choice([leaf.answer for leaf in leaves])
    if index is None:
        return Pick(node=leaves[0] if leaves else None, reason="no-answer")
    top = answer_key(leaves[index].answer)
    return Pick(node=leaves[index], score=votes[top] / len(leaves), reason=reason, candidates=votes)


def best_pick(ctx: SearchContext, leaves: Sequence[Node]) -> Pick:
    """Best-of-N: the answered leaf with the best aggregated chain score.

    Pick.candidates maps answer (or "" for none) -> the best score among its chains.
    """
    scores = [ctx.chain_score(leaf) for leaf in leaves]
    best = best_choice([leaf.answer for leaf in leaves], scores)
    candidates: dict[str, float] = {}
    for leaf, score in zip(leaves, scores):
        key = leaf.answer or ""
        candidates[key] = max(candidates.get(key, 0.0), score)
    return Pick(node=leaves[best], score=scores[best], candidates=candidates)


def weighted_pick(ctx: SearchContext, leaves: Sequence[Node], reason: str = "finished") -> Pick:
    """PRM-weighted vote over the leaves (see `weighted_choice`).

    Pick.score is the winner's share of the total weight; Pick.candidates maps answer -> total
    weight. With no answer at all, the best-scored leaf is returned with reason "no-answer".
    """
    weights = [ctx.chain_score(n) for n in leaves]
    best, totals = weighted_choice([n.answer for n in leaves], weights)
    if best is None:
        node, score = best_scored(ctx, leaves)
        return Pick(node=node, score=score, reason="no-answer")
    top = answer_key(leaves[best].answer)
    total = sum(totals.values())
    share = totals[top] / total if total > 0 else 1.0 / len(totals)
    return Pick(node=leaves[best], score=share, reason=reason, candidates=totals)


def best_scored(ctx: SearchContext, nodes: Sequence[Node]) -> tuple[Node | None, float | None]:
    """The node whose chain has the highest aggregated PRM score (ties: the earliest)."""
    if not nodes:
        return None, None
    scored = [(ctx.chain_score(n), -i) for i, n in enumerate(nodes)]
    score, neg_i = max(scored)
    return nodes[-neg_i], score


def best_scored_pick(
    ctx: SearchContext, pool: Sequence[Node], finished: Sequence[Node], reason: str = "finished"
) -> Pick:
    """A tree search's final Pick: the best-scored node of `pool` (see `best_scored`), with the
    best score per answer among the `finished` chains as its candidates."""
    node, score = best_scored(ctx, pool)
    return Pick(node=node, score=score, reason=reason, candidates=best_per_answer(ctx, finished))


def best_per_answer(ctx: SearchContext, nodes: Sequence[Node]) -> dict[str, float]:
    """answer key -> best aggregated chain score among the nodes carrying it."""
    out: dict[str, float] = {}
    for n in nodes:
        key = answer_key(n.answer)
        if key is None:
            continue
        s = ctx.chain_score(n)
        out[key] = max(out.get(key, s), s)
    return out

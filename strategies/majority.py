"""majority: N sampled solutions, the most frequent final answer wins (no PRM needed)."""

from __future__ import annotations

from reasoner.aggregation import answer_key, vote
from reasoner.registry import register_strategy
from reasoner.search import Pick, Rollout, Search, SearchContext, Strategy


def majority_pick(leaves: list, reason: str = "finished") -> Pick:
    """The first leaf carrying the most voted answer (ties: the answer seen first)."""
    votes = vote(leaf.answer for leaf in leaves)
    if not votes:
        return Pick(node=leaves[0] if leaves else None, reason="no-answer")
    top = max(votes, key=votes.get)  # dicts keep insertion order: ties go to the first seen
    node = next(leaf for leaf in leaves if answer_key(leaf.answer) == top)
    return Pick(node=node, score=votes[top] / len(leaves), reason=reason, candidates=votes)


@register_strategy
class Majority(Strategy):
    name = "majority"
    uses_prm = False
    needs_prm = False

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        return majority_pick(leaves)

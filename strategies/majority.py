"""majority: N sampled solutions, the most frequent final answer wins (no PRM needed)."""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import PRMUse, Rollout, Search, SearchContext, Strategy, majority_pick


@register_strategy
class Majority(Strategy):
    name = "majority"
    prm = PRMUse.UNUSED
    replayable = True

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        return majority_pick(leaves)

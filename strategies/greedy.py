"""greedy: plain decoding, one solution at temperature 0 (no PRM, no search)."""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import Pick, PRMUse, Rollout, Search, SearchContext, Strategy


@register_strategy
class Greedy(Strategy):
    name = "greedy"
    prm = PRMUse.UNUSED
    uses_budget = False

    def search(self, ctx: SearchContext) -> Search:
        [[leaf]] = yield Rollout([ctx.tree.root], k=1, temperature=0.0)
        return Pick(node=leaf, reason="finished")

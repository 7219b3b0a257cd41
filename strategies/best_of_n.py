"""best_of_n: N sampled solutions, the PRM's best by aggregated step score (majority without PRM).

Only solutions that reached an answer compete (one without an answer can never be right); when
none did, all do.
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import (
    PRMUse,
    Rollout,
    Score,
    Search,
    SearchContext,
    Strategy,
    best_pick,
    majority_pick,
)


@register_strategy
class BestOfN(Strategy):
    name = "best_of_n"
    prm = PRMUse.OPTIONAL
    replayable = True

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        if not ctx.has_prm:
            return majority_pick(leaves)
        yield Score(leaves)
        return best_pick(ctx, leaves)

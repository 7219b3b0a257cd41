"""best_of_n: N sampled solutions, the PRM's best by aggregated step score (majority without PRM).

Only solutions that reached an answer compete (one without an answer can never be right); when
none did, all do.
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import Pick, Rollout, Score, Search, SearchContext, Strategy
from strategies.majority import majority_pick


@register_strategy
class BestOfN(Strategy):
    name = "best_of_n"
    needs_prm = False

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        if not ctx.has_prm:
            return majority_pick(leaves)
        yield Score(leaves)
        scored = [(ctx.chain_score(leaf), i) for i, leaf in enumerate(leaves)]
        answered = [t for t in scored if leaves[t[1]].answer is not None] or scored
        best_score, best = max(answered, key=lambda t: (t[0], -t[1]))
        candidates: dict[str, float] = {}
        for score, i in scored:
            key = leaves[i].answer or ""
            candidates[key] = max(candidates.get(key, 0.0), score)
        return Pick(node=leaves[best], score=best_score, candidates=candidates)

"""best_of_n: N sampled solutions, the PRM's best by aggregated step score (majority without PRM).

Only solutions that reached an answer compete (one without an answer can never be right); when
none did, all do.
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import Pick, SampleThenSelect, SearchContext, best_pick
from reasoner.tree import Node


@register_strategy
class BestOfN(SampleThenSelect):
    name = "best_of_n"

    def select(self, ctx: SearchContext, leaves: list[Node]) -> Pick:
        return best_pick(ctx, leaves)

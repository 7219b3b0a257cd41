"""majority: N sampled solutions, the most frequent final answer wins (no PRM needed)."""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import Pick, PRMUse, SampleThenSelect, SearchContext, majority_pick
from reasoner.tree import Node


@register_strategy
class Majority(SampleThenSelect):
    name = "majority"
    prm = PRMUse.UNUSED

    def select(self, ctx: SearchContext, leaves: list[Node]) -> Pick:
        return majority_pick(leaves)

"""weighted_best_of_n: N sampled solutions, PRM-weighted vote over their final answers.

Each of the N complete samples votes for its (canonicalized) final answer with its aggregated
PRM score (aggregation from the context: min, prod, last or mean); the answer with the largest
total weight wins and its best-scored chain is returned. Pick.candidates maps answer -> total
weight (so the weights sum to the sum of aggregated scores of the samples that have an answer);
Pick.score is the winner's share of the total weight. Without a PRM it is majority vote.

Budget: N = the number of complete solutions' worth of policy generation = N samples.
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import Pick, SampleThenSelect, SearchContext, weighted_pick
from reasoner.tree import Node


@register_strategy
class WeightedBestOfN(SampleThenSelect):
    name = "weighted_best_of_n"

    def select(self, ctx: SearchContext, leaves: list[Node]) -> Pick:
        return weighted_pick(ctx, leaves)

"""Strategy base classes for whole families of strategies (the best-of-N family)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from reasoner.search.requests import Pick, Rollout, Score, Search
from reasoner.search.selection import majority_pick
from reasoner.search.strategy import PRMUse, SearchContext, Strategy
from reasoner.tree import Node


class SampleThenSelect(Strategy):
    """The best-of-N family: N complete samples from the root, then one selection rule.

    Subclasses implement `select(ctx, leaves)`. The leaves are scored first unless the strategy
    declares `prm = PRMUse.UNUSED`; run without a PRM, an OPTIONAL member is majority vote. Such a strategy's result
    at budget n depends only on the first n samples: it is replayable from one sampling run.
    """

    prm: ClassVar[PRMUse] = PRMUse.OPTIONAL
    replayable: ClassVar[bool] = True

    @abstractmethod
    def select(self, ctx: SearchContext, leaves: list[Node]) -> Pick:
        """The Pick among the N sampled leaves (scored when ctx.has_prm)."""

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        if self.prm is PRMUse.UNUSED:
            return self.select(ctx, leaves)
        if not ctx.has_prm:
            return majority_pick(leaves)  # without a PRM, every member of the family votes
        yield Score(leaves)
        return self.select(ctx, leaves)

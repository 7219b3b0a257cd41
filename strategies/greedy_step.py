"""greedy_step: at every step sample k next steps, keep the PRM's best (a beam of width 1).

Starting at the root, each round asks for k candidate next steps under the current node, scores
their chains with the PRM and moves to the candidate with the highest aggregated chain score
(ties: the first sampled). It stops when the chosen candidate is terminal (end of solution, or
the controller's depth cap); the answer is that chain's.

Budget: N = the number of complete solutions' worth of policy generation. Sampling k candidates
at each of a solution's D steps generates k * D steps, i.e. k solutions' worth, so k defaults to
the budget N (option `k` overrides it; then the spend is k solutions' worth, not N).

Options: k (int >= 1 or None = budget).
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import (
    Expand,
    Score,
    Search,
    SearchContext,
    Strategy,
    best_scored,
    best_scored_pick,
    check_int,
    unique,
)


@register_strategy
class GreedyStep(Strategy):
    name = "greedy_step"
    options = {"k": None}

    def validate(self) -> None:
        if self.config["k"] is not None:
            check_int(self.name, "k", self.config["k"], 1)

    def search(self, ctx: SearchContext) -> Search:
        k = self.config["k"] or ctx.budget
        node = ctx.tree.root
        seen_terminals = []
        for step in range(ctx.max_depth):
            [children] = yield Expand([node], k=k)
            candidates = unique(children)
            yield Score(candidates)
            best, score = best_scored(ctx, candidates)
            for c in candidates:
                c.meta["greedy_step"] = {"round": step, "chosen": c is best}
            seen_terminals.extend(c for c in candidates if c.terminal)
            node = best
            if node.terminal:
                break
        reason = "finished" if node.terminal else "depth-limit"
        return best_scored_pick(ctx, [node], seen_terminals, reason)

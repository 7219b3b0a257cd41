"""dvts: diverse verifier tree search, N // M independent greedy-by-PRM subtrees.

With budget N and width M there are S = N // M subtrees. In the first round the root is expanded
into N first steps (one request, the prompt prefilled once) which are split into S groups of M
(when M does not divide N the N candidates are spread evenly over the S subtrees). Each subtree
keeps its best candidate by aggregated PRM chain score (a beam of width M with one kept beam);
in later rounds every still-open subtree expands its kept step M ways, all subtrees together in
one Expand (a list of nodes with per-node k) and one Score per round. A subtree ends when its
kept step is terminal (end of solution, or the controller's depth cap). Because the subtrees
never compete for survival, their answers stay diverse at large N.

Final pick (option `final`): "score" = the subtree result with the best aggregated PRM score;
"weighted" = PRM-weighted vote over the S subtree results (answer -> sum of aggregated scores),
returning the winning answer's best-scored chain.

Budget: N = the number of complete solutions' worth of policy generation: N candidate steps per
round over a solution's D steps is N * D steps = N solutions.

Each candidate records `meta["dvts"] = {"subtree", "round", "score", "kept"}`.

Options: width (M, int >= 1 and <= budget, default 4), final ("score" | "weighted").
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
    check_choice,
    check_int,
    check_width,
    spread,
    unique,
    weighted_pick,
)
from reasoner.tree import Node

FINAL_MODES = ("score", "weighted")


@register_strategy
class DVTS(Strategy):
    name = "dvts"
    options = {"width": 4, "final": "score"}

    def validate(self) -> None:
        check_int(self.name, "width", self.config["width"], 1)
        check_choice(self.name, "final", self.config["final"], FINAL_MODES)

    def check_budget(self, budget: int) -> None:
        check_width(self.name, self.config["width"], budget)

    def search(self, ctx: SearchContext) -> Search:
        n, m = ctx.budget, self.config["width"]
        check_width(self.name, m, n)
        sizes = spread(n, max(1, n // m))
        subtrees = range(len(sizes))
        [first] = yield Expand([ctx.tree.root], k=n)
        groups: dict[int, list[Node]] = {}
        start = 0
        for s in subtrees:
            groups[s] = unique(first[start : start + sizes[s]])
            start += sizes[s]
        tips: dict[int, Node] = {}
        done: dict[int, Node] = {}
        for rnd in range(ctx.max_depth):
            yield Score(unique(c for s in sorted(groups) for c in groups[s]))
            for s in sorted(groups):
                best, score = best_scored(ctx, groups[s])
                for c in groups[s]:
                    c.meta["dvts"] = {
                        "subtree": s,
                        "round": rnd,
                        "score": ctx.chain_score(c),
                        "kept": c is best,
                    }
                if best.terminal:
                    done[s] = best
                    tips.pop(s, None)
                else:
                    tips[s] = best
            open_ = [s for s in subtrees if s not in done]
            if not open_ or rnd == ctx.max_depth - 1:
                break
            results = yield Expand([tips[s] for s in open_], k=[sizes[s] for s in open_])
            groups = {s: unique(children) for s, children in zip(open_, results)}
        finals = [done[s] for s in subtrees if s in done]
        if not finals:
            return best_scored_pick(ctx, [tips[s] for s in sorted(tips)], [], "no-terminal")
        if self.config["final"] == "weighted":
            return weighted_pick(ctx, finals)
        return best_scored_pick(ctx, finals, finals)

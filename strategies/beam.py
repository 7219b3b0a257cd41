"""beam: step-level beam search guided by the PRM (the "search-and-learn" formulation).

With budget N and width M, every round generates N candidate next steps: the kept (active)
beams, N // M of them, are each expanded into M candidates (when fewer beams are active, e.g.
because some finished, the N candidates are spread evenly over the active beams, so a round
always carries N candidates; when M does not divide N the N candidates are spread over the
N // M kept beams the same way). All candidates are scored by the PRM in one call. Candidates
that end the solution (terminal: end of sequence, or the controller's depth cap) are set aside
as finished beams; of the others the N // M with the highest aggregated chain score are kept
(ties: the earlier sampled). The search stops once N beams have finished, when no beam is
active, or after `max_depth` rounds. The answer is the finished beam with the best aggregated
PRM score (fallback if none finished: the best active beam).

Lookahead (option `lookahead` = L >= 1): a non-terminal candidate is rolled forward L more steps
greedily (temperature 0, one request per lookahead level for all candidates at once) and is
ranked by the aggregated PRM score of the chain at the end of the lookahead (with aggregation
"last" exactly the PRM score at the end of the lookahead). The lookahead steps stay in the tree
marked `meta["lookahead"]`; they are never kept as beams and never picked.

Budget: N = the number of complete solutions' worth of policy generation: N candidates per
round, one step each, over a solution's D steps is N * D steps = N solutions. A lookahead of L
adds up to L greedy steps per candidate per round, so it spends up to (1 + L) times as much;
compare lookahead runs by the reported tokens and FLOPs.

Each candidate records `meta["beam"] = {"round", "score", "kept"}` (score = the ranking score).

Options: width (M, int >= 1 and <= budget, default 4), lookahead (int >= 0, default 0).
"""

from __future__ import annotations

from reasoner.registry import register_strategy
from reasoner.search import (
    Expand,
    Score,
    Search,
    SearchContext,
    Strategy,
    best_scored_pick,
    check_int,
    check_width,
    spread,
    unique,
)
from reasoner.tree import Node


def greedy_lookahead(candidates: list[Node], steps: int):
    """Roll each non-terminal candidate `steps` steps forward at temperature 0 (batched).

    A sub-generator (use with `yield from`): returns, per candidate, the node ending its
    lookahead (the candidate itself when it is terminal or when `steps` is 0).
    """
    tips = list(candidates)
    live = [i for i, c in enumerate(candidates) if not c.terminal]
    for _ in range(steps):
        if not live:
            break
        results = yield Expand([tips[i] for i in live], k=1, temperature=0.0)
        still = []
        for i, children in zip(live, results):
            child = children[0]
            if child is not tips[i]:
                child.meta["lookahead"] = True
                tips[i] = child
            if not child.terminal:
                still.append(i)
        live = still
    return tips


@register_strategy
class BeamSearch(Strategy):
    name = "beam"
    options = {"width": 4, "lookahead": 0}

    def validate(self) -> None:
        check_int(self.name, "width", self.config["width"], 1)
        check_int(self.name, "lookahead", self.config["lookahead"], 0)

    def check_budget(self, budget: int) -> None:
        check_width(self.name, self.config["width"], budget)

    def search(self, ctx: SearchContext) -> Search:
        n, m = ctx.budget, self.config["width"]
        check_width(self.name, m, n)
        keep = max(1, n // m)
        active: list[Node] = [ctx.tree.root]
        finished: list[Node] = []
        for rnd in range(ctx.max_depth):
            results = yield Expand(active, k=spread(n, len(active)))
            candidates = unique(c for children in results for c in children)
            tips = yield from greedy_lookahead(candidates, self.config["lookahead"])
            yield Score(unique(tips))
            ranked = []
            for i, (cand, tip) in enumerate(zip(candidates, tips)):
                score = ctx.chain_score(tip)
                cand.meta["beam"] = {"round": rnd, "score": score, "kept": False}
                if cand.terminal:
                    finished.append(cand)
                else:
                    ranked.append((score, -i, cand))
            ranked.sort(key=lambda t: (t[0], t[1]), reverse=True)
            active = [cand for _, _, cand in ranked[:keep]]
            for cand in active:
                cand.meta["beam"]["kept"] = True
            if len(finished) >= n or not active:
                break
        pool, reason = (finished, "finished") if finished else (active, "no-terminal")
        return best_scored_pick(ctx, pool, finished, reason)

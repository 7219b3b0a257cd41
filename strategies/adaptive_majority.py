"""adaptive_majority / adaptive_weighted: sample in rounds, stop once the vote is settled.

Spec, with budget N and options b = round_size, q = confidence:

1. Round r draws k = min(b, N - n) complete samples from the root (one Rollout; n = the samples
   drawn so far); adaptive_weighted then scores the new samples in one Score.
2. Evidence: each sample with an answer is one vote for it, each sample without one a vote for
   "other". adaptive_weighted lets the PRM redistribute the answered votes: answer j gets
   n_a * W_j / W, W_j the sum of the aggregated PRM chain scores of its samples, W their total
   over all answered samples, n_a the number of answered samples (so the evidence stays n_a
   votes; with equal scores, or W = 0, these are the plain counts, adaptive_majority's).
3. Posterior: Dirichlet(c_j + 1 for every answer j seen, c_other + 1), "other" standing for
   every answer not seen yet (and for no answer). The leader is the answer with the largest
   pseudo-count (ties: the first seen), the answer the final vote picks.
   (Giving a sample's doubt, 1 - s, to "other" instead was tried: with the shipped ER-PRM the
   leader then almost never beat "other", and adaptive_weighted never stopped early.)
4. Stop as soon as P(the leader stays the leader) >= q, or when N samples are spent. The
   probability is the closed-form union bound 1 - sum over rivals r of P(theta_r > theta_leader),
   every rival answer and "other" included, each exact from the pair's Beta marginal
   (strategies.answer_posterior): no Monte Carlo, a pure function of the pseudo-counts. It never
   overstates the exact Dirichlet probability, so the stop is conservative. With one answer
   only, b = 1 and q = 0.95, four unanimous samples stop the search (0.969; three give 0.9375).
5. Final pick over all samples drawn: adaptive_majority = majority vote (`majority_pick`);
   adaptive_weighted = PRM-weighted vote (`weighted_pick`; without a PRM, majority vote).

Budget: N = the most samples drawn (each a complete solution); a settled problem spends fewer.
Every round is a Rollout of its own, seeded by the controller from the root's expansion count:
the samples at budget n are a prefix of those at budget N, but they are not the first n of
one N-sample Rollout, so these strategies are not `replayable` (a benchmark runs each budget).
Each round is one more policy request and prefills the prompt again (the HF backend keeps no
prompt encoding for rollouts), so a round costs a prompt's tokens on top of its samples': the
reported policy tokens include them, and a small b saves samples but pays more prefills.

Records: each sample's `meta["adaptive"] = {"round"}`; the root's `meta["adaptive"]` has per
round the samples so far, the leader and its confidence, and `stop` ("confident" | "budget").

Options: round_size (b, int >= 1 and <= budget, default 4), confidence (q in (0.5, 1), 0.95).
"""

from __future__ import annotations

from typing import ClassVar

from reasoner.aggregation import answer_key
from reasoner.registry import register_strategy
from reasoner.search import (
    Pick,
    PRMUse,
    Rollout,
    Score,
    Search,
    SearchContext,
    Strategy,
    check_int,
    check_number,
    majority_pick,
    weighted_pick,
)
from reasoner.tree import Node
from reasoner.types import ReasonerError
from strategies.answer_posterior import leader_confidence

KEY = "adaptive"  # meta key on the root (summary) and on each sample


def pseudo_counts(
    answers: list[str | None], weights: list[float]
) -> tuple[dict[str, float], float]:
    """Votes per answer key (the answered samples' votes shared in proportion to `weights`) and
    the "other" votes (samples without an answer)."""
    totals: dict[str, float] = {}
    plain: dict[str, float] = {}
    for answer, w in zip(answers, weights):
        key = answer_key(answer)
        if key is not None:
            totals[key] = totals.get(key, 0.0) + max(0.0, w)
            plain[key] = plain.get(key, 0.0) + 1.0
    answered = sum(plain.values())
    other = len(answers) - answered
    weight = sum(totals.values())
    if weight <= 0.0:
        return plain, other
    return {key: answered * w / weight for key, w in totals.items()}, other


class _Adaptive(Strategy):
    """Shared rounds and stopping rule; subclasses say whether the PRM weighs the votes."""

    weighted: ClassVar[bool] = False
    options = {"round_size": 4, "confidence": 0.95}

    def validate(self) -> None:
        check_int(self.name, "round_size", self.config["round_size"], 1)
        q = check_number(self.name, "confidence", self.config["confidence"], 0.5, strict=True)
        if q >= 1.0:
            raise ReasonerError(
                f"strategy {self.name!r}: option 'confidence' must be in (0.5, 1), got "
                f"{self.config['confidence']!r}"
            )

    def check_budget(self, budget: int) -> None:
        b = self.config["round_size"]
        if b > budget:
            raise ReasonerError(
                f"strategy {self.name!r}: round_size b={b} is larger than the budget N={budget}; "
                f"valid: 1 <= round_size <= budget"
            )

    def search(self, ctx: SearchContext) -> Search:
        self.check_budget(ctx.budget)
        weighted = self.weighted and ctx.has_prm
        samples: list[Node] = []
        history: list[dict] = []
        summary = {"rounds": history, "stop": "budget"}
        ctx.tree.root.meta[KEY] = summary
        rnd = 0
        while len(samples) < ctx.budget:
            k = min(self.config["round_size"], ctx.budget - len(samples))
            [new] = yield Rollout([ctx.tree.root], k=k)
            scorable = [leaf for leaf in new if leaf.parent is not None]
            if weighted and scorable:
                yield Score(scorable)
            for leaf in scorable:
                leaf.meta[KEY] = {"round": rnd}
            samples.extend(new)
            leader, confidence = self._confidence(ctx, samples, weighted)
            history.append(
                {"round": rnd, "samples": len(samples), "leader": leader, "confidence": confidence}
            )
            rnd += 1
            if confidence >= self.config["confidence"]:
                summary["stop"] = "confident"
                break
        return self._pick(ctx, samples, weighted)

    @staticmethod
    def _confidence(
        ctx: SearchContext, samples: list[Node], weighted: bool
    ) -> tuple[str | None, float]:
        answers = [leaf.answer for leaf in samples]
        if weighted:
            weights = [
                ctx.chain_score(leaf) if leaf.parent is not None else 0.0 for leaf in samples
            ]
        else:
            weights = [1.0] * len(samples)
        counts, other = pseudo_counts(answers, weights)
        return leader_confidence(counts, other)

    @staticmethod
    def _pick(ctx: SearchContext, samples: list[Node], weighted: bool) -> Pick:
        return weighted_pick(ctx, samples) if weighted else majority_pick(samples)


@register_strategy
class AdaptiveMajority(_Adaptive):
    name = "adaptive_majority"
    prm = PRMUse.UNUSED


@register_strategy
class AdaptiveWeighted(_Adaptive):
    name = "adaptive_weighted"
    prm = PRMUse.OPTIONAL
    weighted = True

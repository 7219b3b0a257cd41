"""particle_filter: sequential Monte Carlo over steps, PRM step scores as the likelihood.

Spec, with budget N and options T = weight_temperature, tau = ess_threshold:

1. Start: N particles, each a chain (its tip node, the root at first) with log-weight 0.
2. Round r (at most `max_depth` rounds): every live particle (tip not terminal) is extended by
   one step, all in ONE Expand: one request per distinct tip, k = the number of particles on it
   (copies made by resampling sample their next steps independently). A particle whose sample
   generated nothing ends at its tip (the controller closes it) without a new step.
3. Weighting: the new steps are scored in one Score; a particle's log-weight grows by s / T, s
   the PRM's score of its new step (given the whole chain). So its weight is the product of
   exp(s_t / T) over its steps since it was last resampled, and the normalized weights are the
   softmax of the summed step scores / T: a lower T trusts the PRM more.
4. Finished particles are absorbing: a particle whose tip is terminal keeps its weight, is never
   extended again and never resampled (neither dropped nor copied).
5. Resampling: let L be the live particles after the round and w their weights normalized within
   L. If ESS(w) = 1 / sum w^2 < tau * |L|, the |L| live particles are replaced by |L| draws from
   L with probabilities w (option `resampling`: "systematic", one uniform offset, each particle
   copied floor or ceil of |L| w_i times; or "multinomial", independent draws). The draws share
   the live particles' total weight equally, so the finished particles' share is unchanged.
   Otherwise the weights carry over. tau = 1 resamples whenever the weights differ at all.
6. Stop when no particle is live. Final pick (option `final`) over the finished particles:
   "vote" = answer -> sum of the normalized weights of its particles; the winning answer's
   heaviest particle (ties: the earliest; Pick.score = the winner's share of the answered
   particles' weight);
   "best" = the heaviest particle with an answer (Pick.score = its normalized weight). No finished
   particle (only with a depth cap below the chains' length): the heaviest live one, "no-terminal".

Budget: N = N particles, one chain each: every round generates one step per live particle, so
the whole run generates N solutions' worth of steps (as beam's N candidates per round do).

Randomness: resampling draws from a `random.Random` seeded by the problem (id, else text), the
round and the token ids of the live particles' tips. The tips depend on the run's sampling seed,
so the resampling noise changes with the seed, and the search is a pure function of its tree.

Where this follows or differs from the references (Puri et al. 2025, "A Probabilistic Inference
Approach to Inference-Time Scaling of LLMs using Particle-Based Monte Carlo Methods"; its_hub's
`ParticleFiltering`, its_hub/algorithms/particle_gibbs.py):
- Follows both: the policy is the proposal, one step per particle per round, the PRM's score of
  the newest step (reading the whole chain) is the per-step evidence, weights go through a
  softmax, budget = the number of particles.
- Puri et al. and its_hub resample at every step; here only when the live particles' ESS falls
  below tau (the classical adaptive rule), by default systematically (lower variance). tau = 1
  with "multinomial" is their every-step multinomial scheme, except that exactly equal weights
  are left alone.
- its_hub weighs a particle by the logit of its PRM score (softmax of logits, no temperature) and
  resamples all particles, finished ones included, so a finished chain can be dropped or copied;
  here finished particles are absorbing (4.). Its final pick is the heaviest particle ("best"
  here); "vote" is the weighted answer vote.

Records: each new step's `meta["particle_filter"] = {"round", "log_weight"}`; the root's
`meta["particle_filter"]["rounds"]` lists per round the live count, ESS, whether it resampled,
and every particle's tip id and log-weight after the round.

Options: weight_temperature (T > 0, default 0.1), ess_threshold (tau in (0, 1], default 0.5),
resampling ("systematic" | "multinomial"), final ("vote" | "best"). The default T: PRM step
scores are probabilities in [0, 1], so at T = 0.1 a step scored 0.1 higher weighs e times more;
at T = 1 the weights barely move, the filter seldom resamples and is little more than a weighted
vote over N independent samples (pilot, 30 arith test problems at N = 16: no resampling at all
and 40 % at T = 1, 60 % at T = 0.1; best-of-16 53 %, beam 67 %; pilot numbers, not results).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from reasoner.aggregation import answer_key
from reasoner.registry import register_strategy
from reasoner.search import (
    Expand,
    Pick,
    Score,
    Search,
    SearchContext,
    Strategy,
    best_choice,
    check_choice,
    check_number,
    unique,
    weighted_choice,
)
from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError
from strategies.resampling import (
    SCHEMES,
    effective_sample_size,
    log_sum_exp,
    normalized,
    resample,
)

FINAL_MODES = ("vote", "best")
KEY = "particle_filter"  # meta key on the root (summary) and on each new step
ESS_SLACK = 1e-9  # equal weights give ESS = |L| up to rounding: that is not "below" tau * |L|


@dataclass
class Particle:
    """One chain of the population: the node it ends at and its log-weight."""

    tip: Node
    log_weight: float = 0.0


def round_rng(tree: StepTree, rnd: int, tips: list[Node]) -> random.Random:
    """The resampling RNG of a round: seeded by the problem, the round and the tips' tokens."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{tree.problem_id or tree.problem_text}:{rnd}".encode())
    for tip in tips:
        digest.update(b"|" + ",".join(map(str, tip.token_ids)).encode())
    return random.Random(int.from_bytes(digest.digest(), "big"))


def extend(particles: list[Particle]):
    """Extend every particle one step with ONE Expand (a sub-generator for `yield from`).

    One request per distinct tip, k = the particles on it; returns the particles whose chain got
    a new step (the others generated nothing and now end at their tip)."""
    groups: dict[int, list[Particle]] = {}
    for p in particles:
        groups.setdefault(p.tip.id, []).append(p)
    tips = [members[0].tip for members in groups.values()]
    results = yield Expand(tips, k=[len(members) for members in groups.values()])
    grown = []
    for members, children in zip(groups.values(), results):
        for p, child in zip(members, children):
            if child is not p.tip:
                p.tip = child
                grown.append(p)
    return grown


@register_strategy
class ParticleFilter(Strategy):
    name = "particle_filter"
    options = {
        "weight_temperature": 0.1,
        "ess_threshold": 0.5,
        "resampling": "systematic",
        "final": "vote",
    }

    def validate(self) -> None:
        cfg = self.config
        check_number(self.name, "weight_temperature", cfg["weight_temperature"], 0.0, strict=True)
        tau = check_number(self.name, "ess_threshold", cfg["ess_threshold"], 0.0, strict=True)
        if tau > 1.0:
            raise ReasonerError(
                f"strategy {self.name!r}: option 'ess_threshold' must be in (0, 1] (a fraction "
                f"of the live particles), got {cfg['ess_threshold']!r}"
            )
        check_choice(self.name, "resampling", cfg["resampling"], SCHEMES)
        check_choice(self.name, "final", cfg["final"], FINAL_MODES)

    def search(self, ctx: SearchContext) -> Search:
        cfg = self.config
        temperature = cfg["weight_temperature"]
        particles = [Particle(ctx.tree.root) for _ in range(ctx.budget)]
        history: list[dict] = []
        ctx.tree.root.meta[KEY] = {"rounds": history}
        for rnd in range(ctx.max_depth):
            live = [p for p in particles if not p.tip.terminal]
            if not live:
                break
            grown = yield from extend(live)
            if grown:
                yield Score(unique(p.tip for p in grown))
            for p in grown:
                p.log_weight += (p.tip.prm_score or 0.0) / temperature
                p.tip.meta[KEY] = {"round": rnd, "log_weight": p.log_weight}
            particles, entry = self._resample(ctx.tree, particles, rnd)
            history.append(entry)
        return self._pick(particles)

    def _resample(
        self, tree: StepTree, particles: list[Particle], rnd: int
    ) -> tuple[list[Particle], dict]:
        """Resample the live particles if their ESS is below tau * |L|; finished ones stay put."""
        live = [p for p in particles if not p.tip.terminal]
        entry: dict = {"round": rnd, "live": len(live), "ess": None, "resampled": False}
        if live:
            logs = [p.log_weight for p in live]
            weights = normalized(logs)
            ess = effective_sample_size(weights)
            entry["ess"] = ess
            if ess < self.config["ess_threshold"] * len(live) * (1 - ESS_SLACK):
                rng = round_rng(tree, rnd, [p.tip for p in live])
                drawn = resample(self.config["resampling"], weights, len(live), rng)
                share = log_sum_exp(logs) - math.log(len(live))
                fresh = iter(Particle(live[i].tip, share) for i in drawn)
                particles = [p if p.tip.terminal else next(fresh) for p in particles]
                entry["resampled"] = True
        entry["particles"] = [p.tip.id for p in particles]
        entry["log_weights"] = [p.log_weight for p in particles]
        return particles, entry

    def _pick(self, particles: list[Particle]) -> Pick:
        pool = [p for p in particles if p.tip.terminal]
        reason = "finished"
        if not pool:
            pool, reason = particles, "no-terminal"
        weights = normalized([p.log_weight for p in pool])
        answers = [p.tip.answer for p in pool]
        if self.config["final"] == "vote":
            index, totals = weighted_choice(answers, weights)
            if index is None:
                index = best_choice(answers, weights)
                return Pick(node=pool[index].tip, score=weights[index], reason="no-answer")
            share = totals[answer_key(answers[index])] / sum(totals.values())
            return Pick(node=pool[index].tip, score=share, reason=reason, candidates=totals)
        index = best_choice(answers, weights)
        best: dict[str, float] = {}
        for answer, w in zip(answers, weights):
            key = answer_key(answer)
            if key is not None:
                best[key] = max(best.get(key, 0.0), w)
        return Pick(node=pool[index].tip, score=weights[index], reason=reason, candidates=best)

"""How settled a vote is: a Dirichlet posterior over the answers seen, in closed form.

The adaptive strategies stop sampling once the leading answer stays the leader with high
posterior probability. Everything here is deterministic (no Monte Carlo): a probability is a
pure function of the (pseudo-)counts, so a search is reproducible and cheap to test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PRIOR = 1.0  # Dirichlet prior mass on every answer seen and on "other"
_MAX_TERMS = 500
_EPS = 1e-15
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """P(X <= x) for X ~ Beta(a, b), a, b > 0: the regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def beats_probability(leader: float, rival: float) -> float:
    """P(theta_rival > theta_leader) under a Dirichlet with these two parameters (the others
    do not matter): theta_leader / (theta_leader + theta_rival) ~ Beta(leader, rival)."""
    return beta_cdf(0.5, leader, rival)


def leader_confidence(
    counts: Mapping[str, float], other: float, prior: float = PRIOR
) -> tuple[str | None, float]:
    """The leading answer and a lower bound on P(it is the most probable answer).

    Posterior: Dirichlet(counts[j] + prior for every answer j seen, other + prior) over the
    answers seen plus one "other" outcome (answers not seen yet, and no answer). The leader is
    the answer with the largest count (ties: the first in `counts`). The bound is the union
    bound 1 - sum over rivals r (every other answer and "other") of P(theta_r > theta_leader),
    each exact from the pair's Beta marginal; it never overstates the exact probability, and
    lumping the unseen answers into "other" errs the same way. (None, 0.0) without an answer.
    """
    if not counts:
        return None, 0.0
    leader = max(counts, key=counts.get)  # dicts keep insertion order: ties go to the first
    top = counts[leader] + prior
    rivals = [c + prior for key, c in counts.items() if key != leader] + [other + prior]
    lost = sum(beats_probability(top, r) for r in rivals)
    return leader, max(0.0, 1.0 - lost)

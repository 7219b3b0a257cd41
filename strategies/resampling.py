"""Particle weights and resampling schemes for the particle filter (pure functions, no model).

Weights are kept as log-weights so long products of step weights never underflow; the schemes
take normalized weights and an explicit `random.Random`, so a search stays deterministic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

SCHEMES = ("systematic", "multinomial")


def normalized(log_weights: Sequence[float]) -> list[float]:
    """Weights exp(l_i) / sum_j exp(l_j), computed stably (the softmax of the log-weights)."""
    top = max(log_weights)
    exps = [math.exp(x - top) for x in log_weights]
    total = sum(exps)
    return [e / total for e in exps]


def log_sum_exp(log_weights: Sequence[float]) -> float:
    """log(sum_i exp(l_i)), computed stably: the log of the particles' total weight."""
    top = max(log_weights)
    return top + math.log(sum(math.exp(x - top) for x in log_weights))


def effective_sample_size(weights: Sequence[float]) -> float:
    """ESS = (sum w)^2 / sum w^2: n for equal weights, 1 when one particle holds all weight."""
    total = sum(weights)
    return total * total / sum(w * w for w in weights)


def systematic(weights: Sequence[float], m: int, rng: random.Random) -> list[int]:
    """m ancestor indices by systematic resampling: one uniform offset u in [0, 1/m), points
    u + j/m. Index i is drawn floor(m * w_i) or ceil(m * w_i) times; the result is sorted."""
    u = rng.random() / m
    out: list[int] = []
    cumulative, i = weights[0], 0
    for j in range(m):
        point = u + j / m
        while point >= cumulative and i < len(weights) - 1:
            i += 1
            cumulative += weights[i]
        out.append(i)
    return out


def multinomial(weights: Sequence[float], m: int, rng: random.Random) -> list[int]:
    """m ancestor indices drawn independently with probabilities `weights`, sorted."""
    return sorted(rng.choices(range(len(weights)), weights=weights, k=m))


def resample(scheme: str, weights: Sequence[float], m: int, rng: random.Random) -> list[int]:
    """m ancestor indices by `scheme` ("systematic" or "multinomial")."""
    return systematic(weights, m, rng) if scheme == "systematic" else multinomial(weights, m, rng)

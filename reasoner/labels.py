"""ER-PRM step labels: the entropy-regularized value of a prefix computed from its rollout rewards.

v = (1/eta) * ln((1/N) * sum_j exp(eta * r_j)), the optimal value of the KL-regularized objective
estimated from N rollouts of the reference policy (DESIGN.md section 2). eta = 0 is the mean (the
Math-Shepherd "soft" label) and eta = inf the max (the "hard" label). Every function here is
numerically stable over the whole range of eta, from subnormal values to 1e300.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

__all__ = [
    "LABEL_KINDS",
    "ROLLOUT_KINDS",
    "binary_er_value",
    "er_value",
    "label_value",
    "parse_label_kind",
    "resolve_label_kind",
]

# every label family a PRM can be trained on; "exact" is the oracle step truth of a synthetic
# suite (1 before the first wrong step, 0 from it on), a diagnostic upper bound, not a method
LABEL_KINDS = ("er", "soft", "hard", "orm", "exact")
ROLLOUT_KINDS = ("er", "soft", "hard")  # the ones computed from one prefix's rollout rewards

# Below this value of eta * (max - min) a third-order cumulant series is exact to double precision
# (the first omitted term is at most (eta*spread)^3 * spread / 24 < 5e-17 * spread); it also
# keeps subnormal eta exact where eta * r would underflow. Up to _EXPM1_LIMIT the expm1/log1p form
# avoids the cancellation of ln(1 + tiny); above it the plain log-mean-exp form is the precise one.
_SERIES_LIMIT = 1e-5
_EXPM1_LIMIT = 1.0

_VALID_SPECS = (
    "'hard', 'soft', 'orm', 'exact', 'er' (eta given separately), or 'er-<eta>' / 'er:<eta>' / "
    "'er=<eta>' with eta a float >= 0 (0 = soft, inf = hard), e.g. 'er-2', 'er:0.5', 'er=5'"
)


def _check_eta(eta: float) -> float:
    """eta as a float >= 0 (ints and numpy scalars accepted); ValueError for anything else."""
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise ValueError(
            f"eta must be a real number >= 0 (0 = soft label, inf = hard label), got {eta!r}"
        )
    value = float(eta)
    if math.isnan(value):
        raise ValueError("eta is NaN: it must be a real number >= 0 (0 = soft, inf = hard)")
    if value < 0:
        raise ValueError(f"eta must be >= 0 (0 = soft, inf = hard), got {value!r}")
    return value


def _check_rewards(rewards: Sequence[float]) -> list[float]:
    """The rewards as floats, each checked to be a number in [0, 1]; ValueError otherwise."""
    if isinstance(rewards, (str, bytes)):
        raise ValueError(f"rewards must be a sequence of numbers in [0, 1], got {rewards!r}")
    try:
        items = list(rewards)
    except TypeError:
        raise ValueError(
            f"rewards must be a sequence of numbers in [0, 1], got {type(rewards).__name__}"
        ) from None
    if not items:
        raise ValueError("rewards is empty: a step value needs at least one rollout reward")
    out = []
    for i, r in enumerate(items):
        if not isinstance(r, numbers.Real):
            raise ValueError(f"reward {i} is {r!r}: rewards must be numbers in [0, 1]")
        value = float(r)
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(f"reward {i} is {value!r}: rewards must be in [0, 1]")
        out.append(value)
    return out


def er_value(rewards: Sequence[float], eta: float) -> float:
    """ER-PRM value (logsumexp(eta*r) - ln N) / eta of one prefix's rollout rewards in [0, 1].

    eta == 0 gives the mean (soft label), eta == inf the max (hard label); any float in between
    is accepted. The result always lies in [mean, max] and is continuous in eta at both ends.
    """
    r = _check_rewards(rewards)
    e = _check_eta(eta)
    n = len(r)
    hi, lo = max(r), min(r)
    # fsum then divide rounds twice: n equal rewards can average one ulp above their max
    mean = min(max(math.fsum(r) / n, lo), hi)
    if e == 0.0:
        return mean
    if e == math.inf:
        return hi
    spread = hi - lo
    if spread == 0.0:
        return hi
    x = e * spread
    if x < _SERIES_LIMIT:
        # (1/eta) * cumulant generating function = k1 + eta*k2/2 + eta^2*k3/6 + O(eta^3), with
        # the deviations scaled by eta first (|u| < 1e-5): eta*eta*k3 would be inf * 0 = NaN for
        # huge eta times a subnormal spread
        u = [e * (v - mean) for v in r]
        m2 = math.fsum(t * t for t in u) / n
        m3 = math.fsum(t * t * t for t in u) / n
        value = mean + (m2 / 2.0 + m3 / 6.0) / e
    elif x <= _EXPM1_LIMIT:
        # shift by the max, then ln(mean(exp(z))) = log1p(mean(expm1(z))) without cancellation
        value = hi + math.log1p(math.fsum(math.expm1(e * (v - hi)) for v in r) / n) / e
    else:
        # shifted log-mean-exp: every exp is in (0, 1], the max term is exactly 1
        value = hi + math.log(math.fsum(math.exp(e * (v - hi)) for v in r) / n) / e
    return min(max(value, mean), hi)  # Jensen: mean <= v <= max; clamp away rounding


def binary_er_value(k: int, n: int, eta: float) -> float:
    """Closed form ln(1 + p*(e^eta - 1)) / eta, p = k/n, for k of n binary rollouts correct.

    Used to cross-check er_value. Stable for all eta: expm1/log1p for eta <= 1, the rewritten
    1 + ln(p + (1-p)*e^-eta) / eta for larger eta (no overflow), a series for tiny eta.
    """
    if isinstance(k, bool) or isinstance(n, bool):
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    try:
        k, n = operator.index(k), operator.index(n)
    except TypeError:
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}") from None
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    e = _check_eta(eta)
    p = k / n
    if k == 0:
        return 0.0
    if k == n:
        return 1.0
    if e == 0.0:
        return p
    if e == math.inf:
        return 1.0
    q = (n - k) / n  # 1 - p, exactly rounded
    if e < _SERIES_LIMIT:
        # Bernoulli cumulants: k2 = p q, k3 = p q (q - p)
        value = p + e * p * q / 2.0 + e * e * p * q * (q - p) / 6.0
    elif e <= _EXPM1_LIMIT:
        value = math.log1p(p * math.expm1(e)) / e
    else:
        value = 1.0 + math.log(p + q * math.exp(-e)) / e
    return min(max(value, p), 1.0)


def parse_label_kind(spec: str) -> tuple[str, float | None]:
    """Parse a label spec such as "hard", "soft", "orm", "er", "er-2", "er:0.5" or "er=5".

    Returns (kind, eta): eta is None except for "er" with an explicit coefficient. Raises
    ValueError listing the valid forms for anything else.
    """
    if not isinstance(spec, str):
        raise ValueError(f"label kind must be a string: {_VALID_SPECS}; got {spec!r}")
    text = spec.strip().lower()
    if text in ("hard", "soft", "orm", "exact"):
        return text, None
    if not text.startswith("er"):
        raise ValueError(f"unknown label kind {spec!r}: valid forms are {_VALID_SPECS}")
    eta_text = text[2:].strip()
    if not eta_text:
        return "er", None
    if eta_text[0] in "-:=_":
        eta_text = eta_text[1:].strip()
        if not eta_text:
            raise ValueError(f"missing eta in label kind {spec!r}: valid forms are {_VALID_SPECS}")
    try:
        eta = float(eta_text)
    except ValueError:
        raise ValueError(
            f"unknown label kind {spec!r} (cannot read eta from {eta_text!r}): "
            f"valid forms are {_VALID_SPECS}"
        ) from None
    if math.isnan(eta) or eta < 0:
        raise ValueError(
            f"eta must be a number >= 0 in label kind {spec!r}: valid forms are {_VALID_SPECS}"
        )
    return "er", eta


def resolve_label_kind(kind: str, eta: float | None = None) -> tuple[str, float | None]:
    """Combine a label spec with an explicit eta into (kind, eta), eta None except for "er".

    ValueError when eta conflicts with the spec, is given for a kind without one, or is missing.
    """
    name, spec_eta = parse_label_kind(kind)
    if name != "er":
        if eta is not None:
            raise ValueError(f"eta={eta!r} only applies to label kind 'er', not {name!r}")
        return name, None
    if spec_eta is not None and eta is not None and float(eta) != spec_eta:
        raise ValueError(f"label kind {kind!r} says eta={spec_eta!r} but eta={eta!r} was passed")
    chosen = spec_eta if spec_eta is not None else eta
    if chosen is None:
        raise ValueError(
            f"label kind 'er' needs eta: pass eta= or use a spec like 'er-2' ({kind!r})"
        )
    return "er", _check_eta(chosen)


def label_value(rewards: Sequence[float], kind: str, eta: float | None = None) -> float:
    """One prefix's label of the given kind ("er", "soft", "hard", or a spec like "er-2").

    "soft" is the mean reward, "hard" the max, "er" the ER-PRM value for eta. "orm" is a
    per-solution label and is not computed from rollouts: use LabeledSolution.values for it.
    """
    name, e = resolve_label_kind(kind, eta)
    if name in ("orm", "exact"):
        raise ValueError(
            f"label kind {name!r} labels a whole solution (its correctness or its exact first "
            f"wrong step), not a prefix's rollouts: use LabeledSolution.values({name!r})"
        )
    if name == "soft":
        return er_value(rewards, 0.0)
    if name == "hard":
        return er_value(rewards, math.inf)
    assert e is not None
    return er_value(rewards, e)

"""Property tests of the ER-PRM step value: every statement of DESIGN.md section 2, checked on numbers.

A high-precision Decimal evaluation of (1/eta) ln((1/N) sum exp(eta r)) is the oracle.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.labels import (
    binary_er_value,
    er_value,
    label_value,
    parse_label_kind,
    resolve_label_kind,
)

# ---------------------------------------------------------------------------- strategies, oracle

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
rewards_st = st.lists(unit, min_size=1, max_size=20)
# a mean of subnormal rewards can round to exactly 0 (5e-324 / 2 == 0.0): exclude them where a
# test asks "zero iff all rewards are zero"
normal_rewards_st = st.lists(
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_subnormal=False),
    min_size=1,
    max_size=20,
)
binary_rewards_st = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=32)
# eta log-uniform over the range the brief asks to be stable on: 1e-12 .. 1e6
eta_st = st.floats(min_value=-12.0, max_value=6.0).map(lambda x: 10.0**x)
moderate_eta_st = st.floats(min_value=0.01, max_value=50.0)


@st.composite
def k_of_n(draw: st.DrawFn, max_n: int = 64) -> tuple[int, int]:
    n = draw(st.integers(min_value=1, max_value=max_n))
    return draw(st.integers(min_value=0, max_value=n)), n


def oracle(rewards: list[float], eta: float) -> float:
    """(ln(sum exp(eta r)) - ln N) / eta in high-precision decimal arithmetic (exact float inputs)."""
    with localcontext() as ctx:
        ctx.prec = 60 + max(0, -math.floor(math.log10(eta)))  # ln(1 + ~eta) needs the digits
        e = Decimal(eta)
        top = max(Decimal(r) for r in rewards)  # shifted so exp cannot overflow
        total = sum(((e * (Decimal(r) - top)).exp() for r in rewards), Decimal(0))
        return float(top + (total / len(rewards)).ln() / e)


def exact_mean(rewards: list[float]) -> float:
    """The correctly rounded mean. er_value's fsum(r) / N rounds twice: up to 1.5 ulp off."""
    return float(sum(Fraction(r) for r in rewards) / len(rewards))


def binary(k: int, n: int) -> list[float]:
    return [1.0] * k + [0.0] * (n - k)


# ---------------------------------------------------------------------------- exactness


@settings(max_examples=150, deadline=None)
@given(rewards_st, eta_st)
def test_matches_high_precision_oracle(rewards: list[float], eta: float) -> None:
    # absolute error of a few ulps of 1 everywhere, including eta = 1e-12 (where the naive
    # ln(mean(exp(eta r))) / eta loses ~4 digits) and eta = 1e6
    assert er_value(rewards, eta) == pytest.approx(oracle(rewards, eta), rel=1e-14, abs=1e-15)


@settings(max_examples=150, deadline=None)
@given(k_of_n(), eta_st)
def test_closed_form_equals_logsumexp_form(kn: tuple[int, int], eta: float) -> None:
    k, n = kn
    closed = binary_er_value(k, n, eta)
    assert closed == pytest.approx(er_value(binary(k, n), eta), rel=1e-14, abs=1e-15)
    assert closed == pytest.approx(oracle(binary(k, n), eta), rel=1e-14, abs=1e-15)
    # and the formula as written in DESIGN.md, where it is safe to evaluate directly
    if 1e-3 <= eta <= 50:
        p = k / n
        assert closed == pytest.approx(math.log(1 + p * (math.exp(eta) - 1)) / eta, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(k_of_n(), st.floats(min_value=-320.0, max_value=300.0).map(lambda x: 10.0**x))
def test_closed_form_equals_logsumexp_form_over_the_whole_float_range(
    kn: tuple[int, int], eta: float
) -> None:
    k, n = kn
    assert binary_er_value(k, n, eta) == pytest.approx(
        er_value(binary(k, n), eta), rel=1e-13, abs=1e-15
    )


# N = 16, eta = 1, k = 0..16 (DESIGN.md, rounded to 3 places)
REFERENCE_ETA1 = [0, 0.102, 0.195, 0.279, 0.357, 0.43, 0.497, 0.561, 0.62, 0.676, 0.729,
                  0.78, 0.828, 0.874, 0.918, 0.96, 1]  # fmt: skip


@pytest.mark.parametrize("k", range(17))
def test_reference_values_eta_1(k: int) -> None:
    for value in (er_value(binary(k, 16), 1.0), binary_er_value(k, 16, 1.0)):
        assert round(value, 3) == pytest.approx(REFERENCE_ETA1[k], abs=1e-12)
        assert abs(value - REFERENCE_ETA1[k]) <= 5e-4


@pytest.mark.parametrize(
    ("eta", "k", "expected"), [(2, 4, 0.4772), (5, 1, 0.4647), (10, 8, 0.9307)]
)
def test_reference_values_other_eta(eta: float, k: int, expected: float) -> None:
    for value in (er_value(binary(k, 16), eta), binary_er_value(k, 16, eta)):
        assert round(value, 4) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------- bounds, 0/1, limits


@settings(max_examples=150, deadline=None)
@given(rewards_st, eta_st | st.sampled_from([0.0, math.inf]))
def test_between_mean_and_max(rewards: list[float], eta: float) -> None:
    value = er_value(rewards, eta)
    mean = exact_mean(rewards)
    assert 0.0 <= value <= 1.0
    assert min(rewards) <= value <= max(rewards)
    assert mean - 2 * math.ulp(mean) <= value
    assert er_value(rewards, 0.0) <= value  # the soft label itself is the lower end


@given(unit, st.integers(min_value=1, max_value=50), eta_st | st.sampled_from([0.0, math.inf]))
def test_identical_rewards_give_that_reward(reward: float, n: int, eta: float) -> None:
    # fsum([x] * 3) / 3 can land one ulp above x: the mean must not leave [min, max]
    assert er_value([reward] * n, eta) == reward


@settings(max_examples=150, deadline=None)
@given(k_of_n(), eta_st)
def test_zero_iff_no_rollout_correct_one_iff_all(kn: tuple[int, int], eta: float) -> None:
    k, n = kn
    for value in (er_value(binary(k, n), eta), binary_er_value(k, n, eta)):
        assert 0.0 <= value <= 1.0
        assert (value == 0.0) == (k == 0)
        assert (value == 1.0) == (k == n)
        assert value >= k / n  # so strictly positive as soon as one rollout is correct


@settings(max_examples=100, deadline=None)
@given(normal_rewards_st, eta_st)
def test_zero_iff_all_zero_one_iff_all_one_for_graded_rewards(
    rewards: list[float], eta: float
) -> None:
    value = er_value(rewards, eta)
    assert (value == 0.0) == all(r == 0.0 for r in rewards)
    assert (value == 1.0) == all(r == 1.0 for r in rewards)


@settings(max_examples=150, deadline=None)
@given(rewards_st, eta_st, eta_st)
def test_non_decreasing_in_eta(rewards: list[float], a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert er_value(rewards, lo) <= er_value(rewards, hi) + 1e-15
    assert er_value(rewards, 0) <= er_value(rewards, lo) <= er_value(rewards, math.inf)


@settings(max_examples=100, deadline=None)
@given(k_of_n(), eta_st)
def test_non_decreasing_in_k(kn: tuple[int, int], eta: float) -> None:
    _, n = kn
    values = [binary_er_value(k, n, eta) for k in range(n + 1)]
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    assert values == pytest.approx([er_value(binary(k, n), eta) for k in range(n + 1)], abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(rewards_st, eta_st, st.data())
def test_non_decreasing_in_each_reward(
    rewards: list[float], eta: float, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rewards) - 1))
    raised = list(rewards)
    raised[i] = data.draw(st.floats(min_value=rewards[i], max_value=1.0))
    assert er_value(rewards, eta) <= er_value(raised, eta) + 1e-15


@settings(max_examples=100, deadline=None)
@given(rewards_st, st.floats(min_value=-300.0, max_value=-3.0).map(lambda x: 10.0**x))
def test_small_eta_tends_to_the_mean(rewards: list[float], eta: float) -> None:
    # Hoeffding's lemma: 0 <= v - mean <= eta * (max - min)^2 / 8
    mean = exact_mean(rewards)
    spread = max(rewards) - min(rewards)
    gap = er_value(rewards, eta) - mean
    assert -2 * math.ulp(mean) <= gap <= eta * spread**2 / 8 + 2 * math.ulp(mean)


@settings(max_examples=100, deadline=None)
@given(rewards_st, st.floats(min_value=3.0, max_value=300.0).map(lambda x: 10.0**x))
def test_large_eta_tends_to_the_max(rewards: list[float], eta: float) -> None:
    # sum exp(eta (r - max)) >= #argmax, so 0 <= max - v <= ln(N / #argmax) / eta
    top = max(rewards)
    ties = sum(1 for r in rewards if r == top)
    gap = top - er_value(rewards, eta)
    assert -1e-16 <= gap <= math.log(len(rewards) / ties) / eta + 1e-16


@given(rewards_st)
def test_special_values_zero_and_inf(rewards: list[float]) -> None:
    mean = exact_mean(rewards)
    assert abs(er_value(rewards, 0) - mean) <= 2 * math.ulp(mean)
    assert er_value(rewards, 0.0) == er_value(rewards, 0)
    assert er_value(rewards, math.inf) == max(rewards)
    assert er_value(rewards, 5e-324) == er_value(rewards, 0)  # continuous at 0
    assert (
        0 <= max(rewards) - er_value(rewards, 1.7e308) <= 5e-324 + math.log(len(rewards)) / 1.7e308
    )


def test_tiny_eta_has_no_catastrophic_cancellation() -> None:
    # exact: 0.5 + eta * var / 2 = 0.5 + 1.25e-13; the naive form is off by ~1e-4 here
    assert er_value([0.0, 1.0], 1e-12) == pytest.approx(0.5 + 1.25e-13, abs=1e-16)
    assert binary_er_value(1, 2, 1e-12) == pytest.approx(0.5 + 1.25e-13, abs=1e-16)
    naive = math.log((1 + math.exp(1e-12)) / 2) / 1e-12
    assert abs(naive - 0.5) > 1e-6  # the failure mode the stable forms avoid


def test_huge_eta_with_a_subnormal_spread() -> None:
    # eta * spread is tiny although eta is huge: the series must not compute inf * 0
    for eta in (1e155, 1e300, 1.7e308):
        value = er_value([0.0, 2.4812844193886327e-245], eta)
        assert 0.0 < value <= 2.4812844193886327e-245


def test_huge_eta_is_finite() -> None:
    assert er_value([0.0] * 15 + [1.0], 1e6) == pytest.approx(1 - math.log(16) / 1e6, rel=1e-15)
    assert binary_er_value(1, 16, 1e6) == pytest.approx(1 - math.log(16) / 1e6, rel=1e-15)
    assert er_value([0.2, 0.7, 0.7], 1e6) == pytest.approx(0.7 - math.log(1.5) / 1e6, rel=1e-15)


# ---------------------------------------------------------------------------- the KL identity


def normalize(weights: list[float]) -> list[float]:
    total = math.fsum(weights)
    return [w / total for w in weights]


def kl(p: list[float], q: list[float]) -> float:
    return math.fsum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def objective(pi: list[float], pi0: list[float], r: list[float], eta: float) -> float:
    """E_pi[r] - (1/eta) KL(pi || pi0)."""
    return math.fsum(p * x for p, x in zip(pi, r, strict=True)) - kl(pi, pi0) / eta


@st.composite
def discrete_problem(draw: st.DrawFn):
    m = draw(st.integers(min_value=2, max_value=6))
    weights = st.floats(min_value=0.01, max_value=1.0)
    pi0 = normalize(draw(st.lists(weights, min_size=m, max_size=m)))
    r = draw(st.lists(unit, min_size=m, max_size=m))
    other = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=m, max_size=m))
    if sum(other) == 0:
        other[0] = 1.0
    return pi0, r, normalize(other)


@settings(max_examples=150, deadline=None)
@given(discrete_problem(), moderate_eta_st)
def test_kl_variational_identity(problem, eta: float) -> None:
    pi0, r, pi = problem
    value = math.log(math.fsum(p * math.exp(eta * x) for p, x in zip(pi0, r, strict=True))) / eta
    # pi* proportional to pi0 exp(eta r) attains it ...
    pi_star = normalize([p * math.exp(eta * x) for p, x in zip(pi0, r, strict=True)])
    assert objective(pi_star, pi0, r, eta) == pytest.approx(value, abs=1e-12)
    # ... every other pi does no better: exactly, objective(pi) = value - KL(pi || pi*) / eta
    assert objective(pi, pi0, r, eta) <= value + 1e-12
    assert objective(pi, pi0, r, eta) == pytest.approx(value - kl(pi, pi_star) / eta, abs=1e-9)
    assert objective(pi0, pi0, r, eta) <= value + 1e-12  # pi = pi0: E_pi0[r] <= value
    # ... and the value is also -(1/eta) ln E_pi*[exp(-eta r)]
    dual = (
        -math.log(math.fsum(p * math.exp(-eta * x) for p, x in zip(pi_star, r, strict=True))) / eta
    )
    assert dual == pytest.approx(value, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(unit, st.integers(1, 5)), min_size=1, max_size=6), moderate_eta_st)
def test_er_value_is_the_optimal_value_for_the_empirical_policy(samples, eta: float) -> None:
    # N rollouts = pi0 the empirical distribution over their outcomes (counts / N)
    rewards = [r for r, count in samples for _ in range(count)]
    pi0 = [count / len(rewards) for _, count in samples]
    r = [x for x, _ in samples]
    pi_star = normalize([p * math.exp(eta * x) for p, x in zip(pi0, r, strict=True)])
    assert er_value(rewards, eta) == pytest.approx(objective(pi_star, pi0, r, eta), abs=1e-12)


# ---------------------------------------------------------------------------- input handling


def test_eta_types() -> None:
    rewards = [0.0, 1.0, 1.0, 0.0]
    assert er_value(rewards, 2) == er_value(rewards, 2.0) == er_value(rewards, np.float32(2.0))
    assert er_value(rewards, np.int64(2)) == er_value(rewards, 2.0)
    # a fractional eta is used as given (the published code truncated eta to an integer)
    half = er_value(rewards, 0.5)
    assert er_value(rewards, 0) < half < er_value(rewards, 1)
    assert half == pytest.approx(math.log((1 + math.exp(0.5)) / 2) / 0.5, rel=1e-14)


def test_reward_types() -> None:
    assert er_value(np.array([0, 1, 1, 1]), 1.0) == pytest.approx(binary_er_value(3, 4, 1.0))
    assert er_value((True, False), 1.0) == pytest.approx(binary_er_value(1, 2, 1.0))
    assert er_value([np.float32(0.25), 1], 3) == pytest.approx(oracle([0.25, 1.0], 3.0))


@pytest.mark.parametrize(
    ("rewards", "eta", "match"),
    [
        ([0.5], -1.0, ">= 0"),
        ([0.5], -1e-300, ">= 0"),
        ([0.5], float("nan"), "NaN"),
        ([0.5], "2", "real number"),
        ([0.5], None, "real number"),
        ([0.5], True, "real number"),
        ([], 1.0, "empty"),
        ([0.5, 1.5], 1.0, r"reward 1 .*\[0, 1\]"),
        ([-0.1], 1.0, r"\[0, 1\]"),
        ([float("nan")], 1.0, r"\[0, 1\]"),
        (["1"], 1.0, "number"),
        ("01", 1.0, "sequence"),
        (3, 1.0, "sequence"),
    ],
)
def test_bad_input_raises(rewards, eta, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        er_value(rewards, eta)


@pytest.mark.parametrize(
    ("k", "n", "eta"), [(3, 2, 1.0), (-1, 2, 1.0), (0, 0, 1.0), (1, 2, -2.0), (1.0, 2, 1.0)]
)
def test_binary_bad_input_raises(k, n, eta) -> None:
    with pytest.raises(ValueError):
        binary_er_value(k, n, eta)


# ---------------------------------------------------------------------------- kinds and specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hard", ("hard", None)),
        ("soft", ("soft", None)),
        ("orm", ("orm", None)),
        ("er", ("er", None)),
        ("er-2", ("er", 2.0)),
        ("er:0.5", ("er", 0.5)),
        ("er=5", ("er", 5.0)),
        ("  ER-10 ", ("er", 10.0)),
        ("er-1e-3", ("er", 1e-3)),
        ("er:inf", ("er", math.inf)),
        ("er-0", ("er", 0.0)),
    ],
)
def test_parse_label_kind(spec: str, expected) -> None:
    assert parse_label_kind(spec) == expected


@pytest.mark.parametrize("spec", ["", "mse", "er-", "er--1", "er:nan", "er-two", "error", "hard-2"])
def test_parse_label_kind_errors_list_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="hard.*soft.*orm.*er-<eta>"):
        parse_label_kind(spec)


@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=True))
def test_parse_label_kind_round_trips_any_eta(eta: float) -> None:
    for sep in "-:=":
        assert parse_label_kind(f"er{sep}{eta!r}") == ("er", eta)


@settings(max_examples=100, deadline=None)
@given(rewards_st, moderate_eta_st)
def test_label_value_maps_to_er_value(rewards: list[float], eta: float) -> None:
    assert label_value(rewards, "soft") == er_value(rewards, 0)
    assert label_value(rewards, "hard") == er_value(rewards, math.inf)
    assert label_value(rewards, "er", eta) == er_value(rewards, eta)
    assert label_value(rewards, f"er:{eta!r}") == er_value(rewards, eta)


def test_label_value_errors() -> None:
    with pytest.raises(ValueError, match="needs eta"):
        label_value([1.0], "er")
    with pytest.raises(ValueError, match="only applies"):
        label_value([1.0], "hard", 2.0)
    with pytest.raises(ValueError, match="eta=2.0 but eta=3"):
        label_value([1.0], "er-2", 3)
    with pytest.raises(ValueError, match="orm"):
        label_value([1.0], "orm")
    assert resolve_label_kind("er-2", 2) == ("er", 2.0)
    assert resolve_label_kind("er", 0.5) == ("er", 0.5)

"""Tests for the embedded arith suite: generator invariants, splits and the exact step checker."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoner.synthetic import (
    FAMILIES,
    find_equations,
    first_arithmetic_error,
    first_error,
    generate,
    load_split,
    split_steps,
)
from reasoner.synthetic.generator import TEST_SEED, _build_test_split
from reasoner.types import Problem, ReasonerError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)
ops_ranges = st.tuples(st.integers(2, 6), st.integers(2, 6)).map(lambda t: (min(t), max(t)))

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _problems(seed: int, ops: tuple[int, int], n: int = 30) -> list[Problem]:
    return generate(n, seed, min_ops=ops[0], max_ops=ops[1])


def _replace_in_step(text: str, i: int, old: str, new: str) -> str:
    steps = text.split("\n\n")
    assert old in steps[i]
    steps[i] = steps[i].replace(old, new, 1)
    return "\n\n".join(steps)


# ---- generator invariants -------------------------------------------------------------------


@SETTINGS
@given(seed=seeds, ops=ops_ranges)
def test_reference_solutions_are_correct(seed: int, ops: tuple[int, int]) -> None:
    for p in _problems(seed, ops):
        assert first_error(p, p.reference) == -1, (p.text, p.reference)
        assert first_arithmetic_error(p.reference) == -1


@SETTINGS
@given(seed=seeds, ops=ops_ranges)
def test_problem_shape(seed: int, ops: tuple[int, int]) -> None:
    for p in _problems(seed, ops):
        m = p.metadata
        assert ops[0] <= m["ops"] <= ops[1]
        assert m["family"] in FAMILIES
        assert len(m["steps"]) == m["ops"]
        steps = p.reference.split("\n\n")
        assert len(steps) == m["ops"] and all(s.strip() == s and s for s in steps)
        assert "\n" not in p.text and "\n" not in p.reference.replace("\n\n", "")
        assert p.text.endswith("?")
        values = (
            [v for a, _, b, c in m["steps"] for v in (a, b, c)] + m["givens"] + m["distractors"]
        )
        assert all(isinstance(v, int) and 1 <= v <= 999 for v in values)
        for (a, op, b, c), step in zip(m["steps"], steps):
            assert step.count("=") == 1 and f"{a} {op} {b} = {c}" in step
            assert op in "+-*/"
            if op in "*/":
                assert 2 <= b <= 9 or (op == "*" and 2 <= a <= 9)
        assert steps[-1].endswith(f" The answer is {p.answer}.")
        assert sum("The answer is" in s for s in steps) == 1
        assert p.answer == str(m["steps"][-1][3])
        for j, (_, _, _, c) in enumerate(m["steps"][:-1]):  # no dead ends: every result is used
            assert any(c in (a2, b2) for a2, _, b2, _ in m["steps"][j + 1 :]), p.reference
        # every number in the question is either used by the solution or a recorded distractor
        numbers = {int(x) for x in re.findall(r"\d+", p.text)}
        assert numbers <= set(m["givens"]) | set(m["distractors"])
        assert not set(m["distractors"]) & (set(m["givens"]) | {s[3] for s in m["steps"]})


@SETTINGS
@given(seed=seeds, ops=ops_ranges)
def test_deterministic(seed: int, ops: tuple[int, int]) -> None:
    a = [p.to_dict() for p in _problems(seed, ops, 10)]
    b = [p.to_dict() for p in _problems(seed, ops, 10)]
    assert a == b


def test_generate_is_distinct_and_varied() -> None:
    probs = generate(400, 3)
    assert len({p.text for p in probs}) == 400
    assert {p.metadata["family"] for p in probs} == set(FAMILIES)
    assert {p.metadata["ops"] for p in probs} == {2, 3, 4, 5, 6}
    with_distractors = sum(bool(p.metadata["distractors"]) for p in probs) / len(probs)
    assert 0.3 <= with_distractors <= 0.6
    assert any("pick" in p.metadata["traps"] for p in probs)
    assert generate(5, 3, 2, 2)[0].metadata["ops"] == 2
    with pytest.raises(ReasonerError):
        generate(3, 0, min_ops=1, max_ops=6)


# ---- checker ----------------------------------------------------------------------------------


@SETTINGS
@given(seed=seeds, ops=ops_ranges, data=st.data())
def test_corrupted_result_is_caught_at_its_step(seed: int, ops: tuple[int, int], data) -> None:
    for p in _problems(seed, ops, 10):
        i = data.draw(st.integers(0, p.metadata["ops"] - 1))
        a, op, b, c = p.metadata["steps"][i]
        delta = data.draw(st.sampled_from([-10, -1, 1, 2, 10]))
        bad = _replace_in_step(p.reference, i, f"= {c}", f"= {c + delta}")
        assert first_error(p, bad) == i
        assert first_arithmetic_error(bad) == i


def _distractor_variant(p: Problem, i: int, d: int) -> str | None:
    """Step i recomputed with the distractor d in place of one operand (arithmetic stays true)."""
    a, op, b, c = p.metadata["steps"][i]
    if op in _OPS:
        for x, y in ((a, d), (d, b)):
            r = _OPS[op](x, y)
            if r > 0:
                return _replace_in_step(
                    p.reference, i, f"{a} {op} {b} = {c}", f"{x} {op} {y} = {r}"
                )
    elif d % b == 0:
        return _replace_in_step(p.reference, i, f"{a} / {b} = {c}", f"{d} / {b} = {d // b}")
    return None


@SETTINGS
@given(seed=seeds, ops=ops_ranges, data=st.data())
def test_distractor_use_is_a_logic_error(seed: int, ops: tuple[int, int], data) -> None:
    checked = 0
    for p in _problems(seed, ops, 40):
        if not p.metadata["distractors"]:
            continue
        i = data.draw(st.integers(0, p.metadata["ops"] - 1))
        d = data.draw(st.sampled_from(p.metadata["distractors"]))
        bad = _distractor_variant(p, i, d)
        if bad is None:
            continue
        checked += 1
        assert first_error(p, bad) == i, (p.text, bad)
        assert first_arithmetic_error(bad) == -1
    assert checked > 0


def test_checker_rules_on_a_fixed_problem() -> None:
    p = Problem(
        text="Tom has 3 bags with 14 apples each. His sister is 12. He eats 5. How many are left?",
        answer="37",
        metadata={
            "givens": [3, 14, 5],
            "distractors": [12],
            "steps": [[3, "*", 14, 42], [42, "-", 5, 37]],
        },
    )
    ok = "He has 3 * 14 = 42 apples.\n\nHe has 42 - 5 = 37 left. The answer is 37."
    assert first_error(p, ok) == -1
    # commutative variant, x / × operators, extra blank pieces, a separate answer step
    assert first_error(p, "14 x 3 = 42\n\n\n\n42 − 5 = 37\n\nThe answer is 37.") == -1
    assert first_error(p, "14 × 3 = 42.\n\nSo 42 - 5 = 37. The answer is 37") == -1
    # a distractor, an irrelevant value, a missing equation, a wrong or missing answer
    assert first_error(p, "3 * 12 = 36\n\n36 - 5 = 31. The answer is 31.") == 0
    assert first_error(p, "He has 3 * 14 = 42.\n\n42 + 5 = 47. The answer is 47.") == 1
    assert first_error(p, "He has many apples.\n\n42 - 5 = 37. The answer is 37.") == 0
    assert first_error(p, "3 * 14 = 42\n\n42 - 5 = 37. The answer is 36.") == 1
    assert first_error(p, "3 * 14 = 42\n\n42 - 5 = 37.") == 1
    assert first_error(p, "3 * 14 = 42\n\n42 - 5 = 37.\n\nThe answer is 42.") == 2
    assert first_error(p, "3 * 14 = 42\n\nThe answer is 37.") == 1  # never computed
    assert first_error(p, "") == 0
    assert first_error(p, "3 * 14 = 4,200\n\n") == 0
    assert first_arithmetic_error("3 * 14 = 42\n\n42 - 5 = 36") == 1
    assert first_arithmetic_error("1,200 + 300 = 1,500") == -1
    assert first_arithmetic_error("(3 + 4) * 2 = 14\n\n7 / 2 = 3.5\n\n5 / 0 = 0") == 2


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("0123456789 +-*/x×=().,\nThe answer is")), max_size=80
    )
)
def test_checker_never_crashes_on_garbage(text: str) -> None:
    p = generate(1, 0)[0]
    assert -1 <= first_error(p, text) < max(1, len(split_steps(text)))
    assert -1 <= first_arithmetic_error(text) < max(1, len(split_steps(text)))
    find_equations(text)


def test_first_error_needs_an_arith_problem() -> None:
    with pytest.raises(ReasonerError):
        first_error(Problem(text="What is 1 + 1?", answer="2"), "1 + 1 = 2. The answer is 2.")


# ---- splits -----------------------------------------------------------------------------------


def test_test_split_is_committed_and_matches_the_generator() -> None:
    test = load_split("test")
    assert len(test) == 500
    assert test[0].id == "arith-test-0000" and test[-1].id == "arith-test-0499"
    assert [p.to_dict() for p in test] == [p.to_dict() for p in _build_test_split()], (
        f"the committed test split is stale: rerun write_test_split() (seed {TEST_SEED})"
    )
    assert {p.metadata["ops"] for p in test} == {2, 3, 4, 5, 6}
    test[0].metadata["steps"].clear()  # callers get copies
    assert load_split("test")[0].metadata["steps"]


@pytest.mark.slow
def test_train_split_size_and_no_leak() -> None:
    train = load_split("train")
    assert len(train) == 50_000
    texts = {p.text for p in train}
    assert len(texts) == 50_000
    assert not texts & {p.text for p in load_split("test")}
    assert train[123].id == "arith-train-000123"


def test_unknown_split() -> None:
    with pytest.raises(ReasonerError, match="train, test"):
        load_split("validation")

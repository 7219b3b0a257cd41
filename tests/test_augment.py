"""Slip negatives: one equation result corrupted, labels and truncation as documented."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from reasoner.synthetic.checker import find_equations
from reasoner.training.augment import slip_negatives, slip_step
from reasoner.training.records import LabeledSolution


@given(st.integers(0, 999), st.integers(0, 999), st.integers(0, 2**32 - 1))
def test_a_slip_breaks_the_equation_and_changes_only_its_result(a: int, b: int, seed: int) -> None:
    step = f"Ben has {a} + {b} = {a + b} marbles."
    bad = slip_step(step, random.Random(seed))
    assert bad is not None and bad != step
    assert bad.startswith(f"Ben has {a} + {b} = ") and bad.endswith(" marbles.")
    assert [eq.holds for eq in find_equations(bad)] == [False]


def test_steps_without_a_true_equation_give_no_slip() -> None:
    rng = random.Random(0)
    assert slip_step("The answer is 12.", rng) is None
    assert slip_step("So 3 + 4 = 8 apples.", rng) is None  # already wrong: nothing to corrupt


def test_copies_cut_at_the_slip_keep_earlier_labels_and_score_zero_there() -> None:
    steps = ["Ann has 3 * 4 = 12 pens.", "She has 12 - 5 = 7 left.", "The answer is 7."]
    rec = LabeledSolution(
        problem_id="p",
        problem="q",
        gold="7",
        steps=steps,
        outcomes=[[1.0, 0.0], [1.0, 1.0], [1.0]],
        correct=True,
        first_error=-1,
    )
    wrong_late = replace(
        rec, outcomes=[[1.0, 0.0], [0.0, 0.0], [0.0]], correct=False, first_error=1
    )
    copies = slip_negatives([rec, wrong_late] * 20, per_record=1, seed=3)
    assert len(copies) == 40
    for c in copies:
        i = c.metadata["slip_step"]
        assert c.metadata["augmented"] == "slip" and not c.correct and c.first_error == i
        assert c.steps[:i] == steps[:i] and len(c.steps) == i + 1
        assert c.values("soft") == [0.5, 1.0][:i] + [0.0]
    # a slip never lands at or after a record's first known error
    assert {c.metadata["slip_step"] for c in copies[1::2]} == {0}
    assert {c.metadata["slip_step"] for c in copies[0::2]} == {0, 1}

"""ProcessBench-style metrics and the harness on the real ProcessBench files."""

import pytest
from conftest import DATA_DIR
from hypothesis import given
from hypothesis import strategies as st

from reasoner.prm_eval import (
    StepCase,
    equation_checker_metrics,
    evaluate_prm,
    first_wrong_step,
    processbench_cases,
    processbench_metrics,
)


def test_first_wrong_step():
    assert first_wrong_step([0.9, 0.6, 0.2, 0.1]) == 2
    assert first_wrong_step([0.9, 0.6]) == -1
    assert first_wrong_step([0.9, 0.6], threshold=0.7) == 1


def test_metrics_by_hand():
    m = processbench_metrics([2, -1, 0, -1], [2, 1, -1, -1])
    assert m["error_accuracy"] == 0.5 and m["correct_accuracy"] == 0.5 and m["f1"] == 0.5
    perfect = processbench_metrics([1, -1], [1, -1])
    assert perfect["f1"] == 1.0


@given(st.lists(st.integers(-1, 5), min_size=1, max_size=30))
def test_perfect_predictions_give_f1_one_when_both_classes_exist(labels):
    m = processbench_metrics(labels, labels)
    if -1 in labels and any(y != -1 for y in labels):
        assert m["f1"] == 1.0
    assert 0.0 <= m["f1"] <= 1.0


def test_equation_checker_catches_slips_not_logic():
    cases = [
        StepCase("a", "q", ["3 * 4 = 12 apples.", "12 + 5 = 18. The answer is 18."], 1),
        StepCase("b", "q", ["3 * 4 = 12 apples.", "12 + 5 = 17. The answer is 17."], -1),
        StepCase(
            "c", "q", ["3 * 9 = 27 apples (a distractor).", "27 + 5 = 32. The answer is 32."], 0
        ),
    ]
    m = equation_checker_metrics(cases)
    assert m["correct_accuracy"] == 1.0 and m["error_accuracy"] == 0.5


@pytest.mark.skipif(
    not (DATA_DIR / "processbench").exists(), reason="ProcessBench data not present"
)
def test_processbench_harness_on_real_files(tiny_ckpt):
    from reasoner.models.hf_prm import HFPRM

    cases = processbench_cases("gsm8k", str(DATA_DIR), limit=6)
    assert len(cases) == 6 and all(c.steps for c in cases)
    assert all(-1 <= c.label < len(c.steps) for c in cases)
    report = evaluate_prm(
        HFPRM(tiny_ckpt, step_format={"step_tag": "<|step|>", "max_step_tokens": 256}), cases
    )
    assert report["n"] + report["skipped"] == 6 and 0.0 <= report["f1"] <= 1.0
    assert (
        report["skipped"] >= 1
    )  # real solutions longer than the tiny model's context are named, not fatal

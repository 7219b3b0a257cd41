"""The lab notebooks (benchmarks/lab): their pure logic on hand-made inputs, that every module
imports, and that the wheel leaves them out."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import tomllib
from setuptools import find_packages

from benchmarks.lab import er_metrics, implicit_prm_probe, label_stats
from benchmarks.lab.grading_variants import perturbed, reformatted, top_level_split, unbox
from benchmarks.lab.pairs import minimal_pairs, pair_accuracy
from reasoner.step_format import get_step_format
from reasoner.synthetic import load_split
from reasoner.training.records import LabeledSolution

ROOT = Path(__file__).resolve().parents[1]
LAB_MODULES = sorted(
    p.stem for p in (ROOT / "benchmarks" / "lab").glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("name", LAB_MODULES)
def test_every_lab_module_imports(name):
    importlib.import_module(f"benchmarks.lab.{name}")


def test_the_wheel_leaves_the_lab_out():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]
    packages = find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    assert "benchmarks" in packages and "reasoner" in packages
    assert not [p for p in packages if p.startswith("benchmarks.lab")]


def chain(answer, correct, steps=("1 + 1 = 2",)):
    return {"steps": list(steps), "answer": answer, "correct": correct}


def test_selection_rules_pick_as_the_strategies_do():
    chains = [chain(None, False), chain("3", False), chain("5", True), chain("5.0", True)]
    scores = [[0.99], [0.9], [0.2], [0.6]]
    # majority: "5" and "5.0" share a key; its first chain is returned
    assert er_metrics.majority(chains, scores) is chains[2]
    # best-of-N: the unanswered chain's high score does not count
    assert er_metrics.best_of_n("min")(chains, scores) is chains[1]
    # weighted vote by the last score: "3" totals 0.9, "5" only 0.8
    assert er_metrics.weighted_best_of_n("last")(chains, scores)["answer"] == "3"
    scores[2] = [0.5]
    # now "5" totals 1.1: the winner's best-scored chain
    assert er_metrics.weighted_best_of_n("last")(chains, scores) is chains[3]
    none = [chain(None, False), chain(None, False)]
    assert er_metrics.majority(none, [[], []]) is none[0]
    assert er_metrics.weighted_best_of_n("last")(none, [[0.1], [0.2]]) is none[0]
    assert er_metrics.best_of_n("min")(none, [[0.1], [0.2]]) is none[1]


def test_checker_vote_drops_chains_with_a_false_equation():
    wrong = [chain("7", False, ["3 + 3 = 7"]), chain("7", False, ["3 + 3 = 7"])]
    right = chain("6", True, ["3 + 3 = 6"])
    assert er_metrics.checker_vote([*wrong, right], []) is right
    assert er_metrics.checker_vote(wrong, []) is wrong[0]  # none clean: vote over all


def test_group_accuracy_averages_disjoint_groups():
    samples = [chain("1", True), chain("2", False), chain("2", False), chain("2", False)]
    scores = [[0.9], [0.1], [0.5], [0.4]]
    acc, cov = er_metrics.group_accuracy(samples, scores, 2, er_metrics.best_of_n("min"))
    assert (acc, cov) == (0.5, 0.5)
    acc, cov = er_metrics.group_accuracy(samples, scores, 4, er_metrics.majority)
    assert (acc, cov) == (0.0, 1.0)
    acc, _ = er_metrics.group_accuracy(samples, scores, 1, er_metrics.random_sample)
    assert acc == 0.25


def test_ranking_counts_within_problem_pairs():
    problems = load_split("test")[:1]
    pid = problems[0].id
    samples = {pid: {"samples": [chain("1", True), chain("2", False), chain("3", False)]}}
    scores = {pid: [[0.4, 0.9], [0.5, 0.5], [0.4, 0.4]]}
    out = er_metrics.ranking(problems, samples, scores)
    assert out["pairs"] == 2
    assert out["pair_acc_min"] == 0.25  # 0.4 vs 0.5 lost, 0.4 vs 0.4 tied
    assert out["pair_acc_last"] == 1.0  # 0.9 beats 0.5 and 0.4
    blind = er_metrics.chain_hash_scores(problems, {pid: {"samples": [chain("1", True)] * 2}})
    assert blind[pid][0] == blind[pid][1]  # identical chains score alike


def test_step_f1_of_the_exact_checker_on_reference_solutions():
    fmt = get_step_format("arith")
    problems = load_split("test")[:5]
    samples = {
        p.id: {"samples": [chain(p.answer, True, fmt.split_steps(p.reference))]} for p in problems
    }
    out = er_metrics.step_f1(problems, samples, None)
    assert out["n"] == 5 and out["n_correct"] == 5 and out["correct_accuracy"] == 1.0
    high = {p.id: [[0.9] * len(samples[p.id]["samples"][0]["steps"])] for p in problems}
    assert er_metrics.step_f1(problems, samples, high)["correct_accuracy"] == 1.0


def record(pid, steps, correct, first_error, outcomes=None):
    outcomes = outcomes or [[1.0]] * (len(steps) - 1)
    return LabeledSolution(
        problem_id=pid,
        problem=f"problem {pid}",
        gold="14",
        steps=steps,
        outcomes=[*outcomes, [float(correct)]],
        correct=correct,
        first_error=first_error,
    )


def test_minimal_pairs_share_the_prefix_and_differ_in_one_result():
    steps = ["3 + 4 = 7", "7 * 2 = 14", "The answer is 14."]
    pairs = minimal_pairs([record("a", steps, True, -1)], 5, seed=0)
    assert pairs
    for problem, right, wrong in pairs:
        assert problem == "problem a"
        assert right[:-1] == wrong[:-1] and right[-1] != wrong[-1]
        assert right == steps[: len(right)]
    assert pair_accuracy([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]) == 0.5


def test_label_separation_splits_at_the_first_error():
    rec = record("a", ["s1", "s2", "s3"], False, 1, outcomes=[[1.0, 1.0], [0.0, 0.0]])
    out = label_stats.separation([rec], "soft")
    assert out["right_steps"] == 1 and out["wrong_steps"] == 1  # the last step is left out
    assert out["mean_right_steps"] == 1.0 and out["mean_wrong_steps"] == 0.0
    assert out["gap"] == 1.0 and out["auc_vs_exact"] == 1.0


def test_implicit_probe_selection_best_and_vote():
    fmt = get_step_format("arith")
    recs = [
        record("a", ["x", "The answer is 14."], True, -1),
        record("a", ["y", "The answer is 12."], False, 1),
        record("a", ["z", "The answer is 12."], False, 1),
    ]
    out = implicit_prm_probe.selection(recs, [[0.9, 0.8], [0.9, 0.1], [0.2, 0.3]], fmt)
    assert out == {"problems": 1, "best_of_8_min": 1.0, "majority_of_8": 0.0}


def test_grading_variants():
    assert ("slash-fraction", "1/2") in reformatted("\\frac{1}{2}")
    assert ("decimal", "0.5") in reformatted("\\frac{1}{2}")
    assert ("trailing-zero", "1000.0") in reformatted("1000")
    assert ("plus-one", "6") in perturbed("5")
    assert ("swapped-pair", "(2, 1)") in perturbed("(1, 2)")
    assert unbox("so \\boxed{\\frac{1}{2}} done") == "so \\frac{1}{2} done"
    assert top_level_split("(1, 2), 3") == ["(1, 2)", "3"]

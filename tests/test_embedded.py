"""The shipped checkpoints: they load from the package and solve an arith problem out of the box."""

import pytest

from reasoner import Reasoner
from reasoner.models.resolve import embedded_dir
from reasoner.synthetic import load_split


@pytest.mark.skipif(
    not (embedded_dir("policy") / "config.json").exists(), reason="embedded policy not built"
)
def test_embedded_policy_solves_with_majority():
    problem = load_split("test")[3]
    sol = Reasoner(strategy="majority", budget=4).solve(problem)
    assert sol.answer is not None and sol.reason == "finished"
    assert sol.steps[-1].endswith(f"The answer is {sol.answer}.")
    assert sol.stats.policy_new_tokens > 0 and sol.stats.prm_tokens == 0
    size = sum(f.stat().st_size for f in embedded_dir("policy").iterdir())
    assert size <= 8 * 2**20  # package data stays small


@pytest.mark.skipif(
    not (embedded_dir("prm") / "config.json").exists(), reason="embedded PRM not built yet"
)
def test_embedded_prm_scores_chains():
    problem = load_split("test")[3]
    sol = Reasoner(strategy="best_of_n", budget=4).solve(problem)
    assert len(sol.step_scores) == len(sol.steps)
    assert all(0.0 <= s <= 1.0 for s in sol.step_scores)

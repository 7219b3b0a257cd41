"""The shipped checkpoints: they load from the package and solve an arith problem out of the box."""

import json

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
    not (embedded_dir("prm") / "evidence_prm.json").exists(), reason="embedded PRM not built yet"
)
def test_embedded_prm_is_a_trained_evidence_prm_that_scores_chains():
    from reasoner.models.evidence_prm import EvidencePRM

    problem = load_split("test")[3]
    r = Reasoner(strategy="best_of_n", budget=4)
    assert isinstance(r.prm, EvidencePRM)
    sol = r.solve(problem)
    assert len(sol.step_scores) == len(sol.steps)
    assert all(0.0 <= s <= 1.0 for s in sol.step_scores)
    training = json.loads((embedded_dir("prm") / "prm_training.json").read_text())
    assert training["kind"] == "evidence" and training["label"] == "er"
    assert training["val"]["pair_acc_min"] > 0.6  # ranks the solutions of one problem
    size = sum(f.stat().st_size for f in embedded_dir("prm").iterdir())
    assert size <= 8 * 2**20  # its base is the embedded policy, not a copy


@pytest.mark.skipif(
    not (embedded_dir("prm-lm") / "config.json").exists(), reason="embedded LM PRM not built"
)
def test_embedded_lm_prm_scores_chains():
    sol = Reasoner(strategy="best_of_n", budget=4, prm="embedded-lm").solve(load_split("test")[3])
    assert len(sol.step_scores) == len(sol.steps)
    assert all(0.0 <= s <= 1.0 for s in sol.step_scores)

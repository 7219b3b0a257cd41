"""The README's examples run as written (a README that lies is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reasoner import Reasoner
from reasoner.types import ReasonerError

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(after_heading: str) -> str:
    text = README.read_text()
    section = text[text.index(after_heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_adding_a_strategy_example_runs(trained_ckpt, tiny_ckpt):
    namespace: dict = {}
    exec(_python_block("## Adding a strategy"), namespace)
    shortest = namespace["Shortest"]
    reasoner = Reasoner(
        strategy=shortest(min_steps=1), budget=4, policy=str(trained_ckpt), prm=str(tiny_ckpt)
    )
    sol = reasoner.solve("Ann has 3 bags with 4 apples each. How many apples does she have?")
    assert sol.strategy == "shortest"
    depths = [n.depth for n in sol.tree.terminals() if n.depth >= 1]
    assert sol.steps and len(sol.steps) == min(depths)
    with pytest.raises(ReasonerError, match="min_steps"):
        shortest(min_steps=0)
    with pytest.raises(ReasonerError, match="strategy_options apply to a strategy given by name"):
        Reasoner(strategy=shortest(), strategy_options={"min_steps": 2}, policy=str(trained_ckpt))


def test_adding_a_prm_family_example_runs(trained_ckpt, monkeypatch):
    from reasoner.models import loading
    from reasoner.models.base import ScoreRequest

    namespace: dict = {}
    exec(_python_block("## Adding a PRM family"), namespace)
    monkeypatch.setitem(loading.PRM_FAMILIES.entries, "short-steps", namespace["ShortSteps"])
    prm = loading.load_prm("short-steps")
    assert prm.score([ScoreRequest("p", ["one two", "one"])])[0] == [[1 / 3, 1 / 2]]
    sol = Reasoner(
        strategy="best_of_n", budget=3, policy=str(trained_ckpt), prm="short-steps"
    ).solve("Ann has 3 bags with 4 apples each. How many apples does she have?")
    assert sol.steps
    assert sol.step_scores == [1.0 / (1 + len(step.split())) for step in sol.steps]

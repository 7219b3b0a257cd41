"""The model-free equation-checker PRM: exact step scores, and a search driven by it end to end."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reasoner import Reasoner
from reasoner.api import load_prm
from reasoner.models.base import ScoreRequest
from reasoner.models.checker_prm import CHECKER_SPEC, EquationCheckerPRM
from reasoner.synthetic import first_arithmetic_error, load_split


def test_scores_mark_exactly_the_steps_with_a_false_equation() -> None:
    prm = load_prm(CHECKER_SPEC)
    assert isinstance(prm, EquationCheckerPRM) and prm.num_parameters == 0
    steps = [
        "Ann has 12 * 3 = 36 apples.",
        "She gives away 5, so 36 - 5 = 30 are left.",  # a slip
        "No equation here, just words.",
        "30 + 2 = 32. The answer is 32.",
    ]
    scores, tokens = prm.score([ScoreRequest("Ann has 12 bags ...", steps)])
    assert scores == [[1.0, 0.0, 1.0, 1.0]] and tokens == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(-2, 2)),
        min_size=1,
        max_size=6,
    )
)
def test_first_zero_is_the_first_arithmetic_error(eqs: list[tuple[int, int, int]]) -> None:
    steps = [f"Then {a} + {b} = {a + b + err} items." for a, b, err in eqs]
    [scores], _ = EquationCheckerPRM().score([ScoreRequest("p", steps)])
    first_zero = scores.index(0.0) if 0.0 in scores else -1
    assert first_zero == first_arithmetic_error("\n\n".join(steps))


def test_beam_search_with_the_checker_keeps_only_clean_chains() -> None:
    problem = load_split("test")[5]
    sol = Reasoner(strategy="beam", budget=4, prm=CHECKER_SPEC, seed=0).solve(problem)
    assert sol.answer is not None
    assert sol.stats.prm_tokens == 0 and sol.stats.policy_new_tokens > 0
    assert first_arithmetic_error("\n\n".join(sol.steps)) == -1
    assert sol.step_scores == [1.0] * len(sol.steps)

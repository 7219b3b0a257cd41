"""The public API end to end with tiny real checkpoints: strategies, determinism, batching, errors."""

import pytest
from conftest import toy_problems

from reasoner import Problem, Reasoner, Solution
from reasoner.registry import available_strategies
from reasoner.types import ReasonerError


@pytest.fixture(scope="module")
def models(trained_ckpt, tiny_ckpt):
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.models.hf_prm import HFPRM

    return HFPolicy(trained_ckpt), HFPRM(tiny_ckpt)


def test_builtin_strategies_are_registered():
    assert {"greedy", "majority", "best_of_n"} <= set(available_strategies())


@pytest.mark.parametrize("strategy", ["greedy", "majority", "best_of_n"])
def test_strategies_return_a_finished_solution(models, strategy):
    policy, prm = models
    problem = toy_problems(1, seed=5)[0]
    sol = Reasoner(strategy=strategy, budget=4, policy=policy, prm=prm).solve(problem)
    assert isinstance(sol, Solution) and sol.reason == "finished"
    assert sol.answer is not None and sol.steps
    assert sol.stats.policy_tokens > sol.stats.policy_new_tokens > 0
    assert sol.stats.flops >= 2 * policy.num_parameters * sol.stats.policy_tokens
    if strategy == "best_of_n":
        assert len(sol.step_scores) == len(sol.steps) and sol.stats.prm_tokens > 0
        assert sol.score == pytest.approx(min(sol.step_scores))
        leaves = sol.tree.terminals()
        assert len(leaves) == 4
    else:
        assert sol.stats.prm_tokens == 0
    again = Solution.from_dict(sol.to_dict())
    assert again.steps == sol.steps and len(again.tree) == len(sol.tree)


def test_same_seed_same_solution_and_batch_equals_sequential(models):
    policy, prm = models
    problems = toy_problems(4, seed=9)
    r = Reasoner(strategy="best_of_n", budget=4, policy=policy, prm=prm, seed=3)
    batch = r.solve_batch(problems)
    single = [r.solve(p) for p in problems]
    assert [s.steps for s in batch] == [s.steps for s in single]
    assert [s.answer for s in batch] == [s.answer for s in single]
    other_seed = Reasoner(strategy="majority", budget=4, policy=policy, seed=4).solve_batch(
        problems
    )
    assert [s.tree.to_dict() for s in other_seed] != [s.tree.to_dict() for s in batch]


def test_gold_answer_never_reaches_the_search(models, monkeypatch):
    policy, prm = models
    seen = []
    original = policy.encode_prompt
    monkeypatch.setattr(policy, "encode_prompt", lambda text: seen.append(text) or original(text))
    p = Problem(
        text="Ann has 3 bags with 2 apples each. She eats 1 apple. How many apples are left?",
        id="g",
        answer="5",
        reference="secret",
    )
    sol = Reasoner(strategy="greedy", policy=policy, prm=None).solve(p)
    assert seen == [p.text] and "secret" not in sol.tree.problem_text


def test_bad_input_gives_clear_errors(models):
    policy, prm = models
    with pytest.raises(ReasonerError, match="empty"):
        Reasoner(strategy="greedy", policy=policy, prm=None).solve("   ")
    with pytest.raises(ReasonerError, match="must be a string"):
        Reasoner(strategy="greedy", policy=policy, prm=None).solve(42)
    with pytest.raises(ReasonerError, match="unknown strategy 'nope'; available: .*greedy"):
        Reasoner(strategy="nope", policy=policy)
    with pytest.raises(ReasonerError, match="budget"):
        Reasoner(strategy="majority", budget=0, policy=policy)
    with pytest.raises(ReasonerError, match="aggregation"):
        Reasoner(strategy="best_of_n", aggregation="median", policy=policy, prm=prm)
    with pytest.raises(ReasonerError, match="width M=4 is larger than the budget N=2"):
        Reasoner(strategy="beam", budget=2, policy=None)  # checked before any model loads
    with pytest.raises(ReasonerError, match="unknown option"):
        Reasoner(strategy="majority", policy=policy, strategy_options={"beam_width": 3})


def test_time_cap_still_returns_a_solution(models):
    policy, prm = models
    sol = Reasoner(strategy="majority", budget=8, policy=policy, max_seconds=0.0).solve(
        toy_problems(1)[0]
    )
    assert sol.reason == "time-limit" and sol.answer is None and sol.steps == []


def test_one_bad_item_does_not_sink_the_batch(models):
    policy, prm = models
    good = toy_problems(2, seed=9)
    r = Reasoner(strategy="best_of_n", budget=2, policy=policy, prm=prm)
    sols = r.solve_batch([good[0], "", 42, good[1]])
    assert [s.reason for s in sols] == ["finished", "error", "error", "finished"]
    assert "empty" in sols[1].error and "int" in sols[2].error
    alone = r.solve_batch([good[0], good[1]])
    assert [s.answer for s in alone] == [sols[0].answer, sols[3].answer]
    assert [s.steps for s in alone] == [sols[0].steps, sols[3].steps]
    with pytest.raises(ReasonerError, match="empty"):
        r.solve("")


def test_a_string_problem_gets_the_same_result_alone_or_anywhere_in_a_batch(models):
    policy, prm = models
    texts = [p.text for p in toy_problems(3, seed=11)]
    r = Reasoner(strategy="majority", budget=3, policy=policy, seed=5)
    alone = r.solve(texts[2])
    batched = r.solve_batch(texts)[2]
    assert (alone.steps, alone.answer) == (batched.steps, batched.answer)
    assert alone.problem_id == batched.problem_id != r.solve(texts[0]).problem_id


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, "hot", True, None])
def test_bad_temperature_is_refused_up_front(models, bad):
    policy, _ = models
    with pytest.raises(ReasonerError, match="temperature must be a finite number >= 0"):
        Reasoner(strategy="majority", policy=policy, temperature=bad)


def test_a_budget_the_tree_cannot_hold_is_refused_up_front():
    # policy=None: the check comes before any model is loaded
    with pytest.raises(ReasonerError, match=r"budget N=100000 cannot fit.*max_nodes is 4096"):
        Reasoner(strategy="best_of_n", budget=100_000, policy=None)
    with pytest.raises(ReasonerError, match="max_nodes must be an integer >= 1"):
        Reasoner(strategy="greedy", max_nodes=0, policy=None)

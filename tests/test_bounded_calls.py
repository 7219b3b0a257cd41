"""Every model call is bounded (issue #14, item 1): the controller serves a tick in calls of at
most the policy's max_rows_per_call samples and the PRM's max_chains_per_call chains, checks its
limits between calls, and refuses a request the machine could not hold before drawing a sample.
Cutting a tick into calls changes no sample, step, answer or metered token."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import toy_problems

from reasoner import Reasoner
from reasoner.controller import Controller, Limits
from reasoner.models.base import GenRequest
from reasoner.models.chunking import (
    TREE_BYTES_PER_TOKEN,
    generation_calls,
    samples_bytes,
    scoring_calls,
)
from reasoner.models.hf_policy import HFPolicy
from reasoner.models.hf_prm import HFPRM
from reasoner.models.step_rules import row_caps
from reasoner.registry import get_strategy
from reasoner.types import ReasonerError


@pytest.fixture(scope="module")
def models(trained_ckpt, tiny_ckpt):
    return HFPolicy(trained_ckpt), HFPRM(tiny_ckpt)


class Spy:
    """A policy or PRM that forwards to a real one, records each call's size and can be slow."""

    def __init__(self, model: Any, per_call: int, seconds_per_item: float = 0.0):
        self.model = model
        self.per_call = per_call
        self.seconds_per_item = seconds_per_item
        self.sizes: list[int] = []
        self.tokens = 0  # PRM tokens computed, over all calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    @property
    def max_rows_per_call(self) -> int:
        return self.per_call

    @property
    def max_chains_per_call(self) -> int:
        return self.per_call

    def generate(self, requests: list[GenRequest]) -> list:
        rows = sum(r.k for r in requests)
        self.sizes.append(rows)
        assert rows <= 10_000, "a call this large would exhaust memory"
        time.sleep(self.seconds_per_item * rows)
        return self.model.generate(requests)

    def score(self, requests: list) -> tuple:
        self.sizes.append(len(requests))
        time.sleep(self.seconds_per_item * len(requests))
        scores, tokens = self.model.score(requests)
        self.tokens += tokens
        return scores, tokens


def _summary(solutions) -> list:
    return [
        (
            s.answer,
            s.steps,
            s.reason,
            s.stats.policy_tokens,
            s.stats.policy_new_tokens,
            s.stats.prm_tokens,
            s.stats.nodes,
            s.stats.policy_calls,
            s.stats.prm_calls,
        )
        for s in solutions
    ]


def _solve(policy, prm, strategy, budget, options, rows, chains):
    spy_policy, spy_prm = Spy(policy, rows), Spy(prm, chains)
    r = Reasoner(
        strategy=strategy,
        budget=budget,
        policy=spy_policy,
        prm=spy_prm,
        seed=5,
        strategy_options=options,
    )
    return r.solve_batch(toy_problems(3, seed=11)), spy_policy.sizes, spy_prm


CASES = [("best_of_n", 8, {}), ("beam", 8, {"width": 2}), ("majority", 6, {})]


@pytest.mark.parametrize(("strategy", "budget", "options"), CASES)
def test_small_policy_calls_give_the_results_of_one_call(models, strategy, budget, options):
    policy, prm = models
    small, sizes, _ = _solve(policy, prm, strategy, budget, options, rows=3, chains=10**6)
    whole, whole_sizes, _ = _solve(policy, prm, strategy, budget, options, 10**6, 10**6)
    assert max(sizes) <= 3 and max(whole_sizes) > 3
    assert _summary(small) == _summary(whole)  # steps, answers, every metered token
    assert [s.step_scores for s in small] == [s.step_scores for s in whole]


@pytest.mark.parametrize(("strategy", "budget", "options"), CASES[:2])
def test_prm_calls_of_one_search_each_give_the_results_of_one_call(
    models, strategy, budget, options
):
    policy, prm = models
    small, _, spy = _solve(policy, prm, strategy, budget, options, rows=10**6, chains=8)
    whole, _, whole_spy = _solve(policy, prm, strategy, budget, options, 10**6, 10**6)
    assert max(spy.sizes) <= 8 < max(whole_spy.sizes)
    assert [(s.answer, s.steps, s.stats.policy_tokens) for s in small] == [
        (s.answer, s.steps, s.stats.policy_tokens) for s in whole
    ]
    for a, b in zip(small, whole):
        assert a.step_scores == pytest.approx(b.step_scores, abs=1e-6)
    # the PRM computes the same tokens (each search's share of a call is its chains' share of
    # the text, rounded, so only the total over calls is compared)
    assert spy.tokens == whole_spy.tokens


def test_a_request_served_in_parts_draws_the_samples_it_draws_whole(models):
    policy, _ = models
    ids = policy.encode_prompt(toy_problems(1, seed=3)[0].text)
    whole = policy.generate([GenRequest(ids, 7, seed=9, mode="end")])[0]
    parts = policy.generate(
        [
            GenRequest(ids, 3, seed=9, mode="end"),
            GenRequest(ids, 4, seed=9, mode="end", first_sample=3),
        ]
    )
    assert [c.steps for c in parts[0] + parts[1]] == [c.steps for c in whole]
    # the prefix's prefill is metered once, on the stream's sample 0
    assert [c.prompt_tokens > 0 for c in parts[0] + parts[1]] == [True] + [False] * 6


def test_generation_calls_cut_requests_by_sample_index():
    reqs = [GenRequest([1] * n, k, seed=n) for n, k in ((5, 2), (3, 7), (4, 1))]
    assert generation_calls(reqs, 100) == [list(enumerate(reqs))]
    calls = generation_calls(reqs, 3)
    assert all(sum(part.k for _, part in call) <= 3 for call in calls)
    served: dict[int, list[int]] = {}
    for call in calls:
        for i, part in call:
            served.setdefault(i, []).extend(range(part.first_sample, part.first_sample + part.k))
    assert served == {0: [0, 1], 1: list(range(7)), 2: [0]}
    assert scoring_calls([2, 5, 1], 100) == [range(0, 8)]
    assert scoring_calls([2, 5, 1], 3) == [range(0, 2), range(2, 5), range(5, 7), range(7, 8)]
    assert scoring_calls([2, 1, 1], 3) == [range(0, 3), range(3, 4)]


def test_time_limit_stops_a_search_within_one_call(models):
    policy, _ = models
    slow = Spy(policy, per_call=4, seconds_per_item=0.1)  # 6.4 s for all 64 samples
    r = Reasoner(strategy="majority", budget=64, policy=slow, max_seconds=0.3)
    t0 = time.perf_counter()
    sol = r.solve(toy_problems(1, seed=2)[0])
    wall = time.perf_counter() - t0
    assert sol.reason == "time-limit"
    assert wall < 3.0, f"a search over its 0.3 s limit ran {wall:.1f} s"
    assert sum(slow.sizes) < 64 and max(slow.sizes) <= 4
    # what was served is kept: the fallback votes over those chains
    assert 0 < len(sol.tree.terminals()) <= sum(slow.sizes)


def test_time_limit_is_checked_between_scoring_calls(models):
    policy, prm = models
    slow_prm = Spy(prm, per_call=1, seconds_per_item=0.4)  # 6.4 s for 16 chains
    r = Reasoner(strategy="best_of_n", budget=16, policy=policy, prm=slow_prm, max_seconds=1.0)
    t0 = time.perf_counter()
    sol = r.solve(toy_problems(1, seed=4)[0])
    wall = time.perf_counter() - t0
    assert sol.reason == "time-limit" and wall < 4.0, f"ran {wall:.1f} s"
    assert sum(slow_prm.sizes) < 16


def test_node_limit_is_checked_between_calls(models):
    policy, _ = models
    spy = Spy(policy, per_call=4)
    controller = Controller(spy, limits=Limits(max_nodes=20, max_depth=12))
    [sol] = controller.run(toy_problems(1, seed=6), get_strategy("majority")(), 64)
    assert sol.reason == "node-limit"
    assert sum(spy.sizes) < 64  # stopped once its tree passed 20 nodes, not after all 64


def test_a_request_too_large_for_memory_is_refused_before_any_sample(models, monkeypatch):
    policy, _ = models
    monkeypatch.setattr("reasoner.controller.available_memory", lambda: 8 * 2**30)
    spy = Spy(policy, per_call=128)
    r = Reasoner(strategy="majority", budget=10**6, policy=spy, max_nodes=10**7)
    problem = toy_problems(1)[0]
    with pytest.raises(ReasonerError, match=r"1000000 samples at once.*GiB.*8\.0 GiB.*lower"):
        r.solve(problem)
    [sol] = r.solve_batch([problem])  # in a batch: this problem's error, the others go on
    assert sol.reason == "error" and "samples at once" in sol.error
    assert spy.sizes == []  # refused before any model call
    assert Reasoner(strategy="majority", budget=4, policy=spy).solve(problem).error is None
    # the estimate: every sample at its token cap in the step tree
    ids = policy.encode_prompt(problem.text)
    [(_, cap)] = [row_caps(GenRequest(ids, 1, 0, "end"), policy.step_format, policy.max_context)]
    one = samples_bytes([GenRequest(ids, 1, 0, "end")], policy.step_format, policy.max_context)
    assert one == cap * TREE_BYTES_PER_TOKEN
    ten = samples_bytes([GenRequest(ids, 10, 0, "end")], policy.step_format, policy.max_context)
    assert ten == 10 * one

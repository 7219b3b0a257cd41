"""The HF PRM backend: tags read in one pass, batching/padding invariance, causal prefix reuse."""

import pytest
import torch

from reasoner.models.base import ScoreRequest
from reasoner.models.hf_prm import HFPRM, PRMInputBuilder
from reasoner.models.prefix_plan import Plan
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError


@pytest.fixture(scope="module")
def prm(tiny_ckpt):
    return HFPRM(tiny_ckpt)


def test_tags_are_placed_after_each_step(prm):
    ids, tags = prm.builder.build("Ann has 2 bags.", ["2 * 3 = 6.", "The answer is 6."])
    assert len(tags) == 2
    assert all(ids[t] == prm.builder.tag_id for t in tags)
    assert ids.count(prm.builder.tag_id) == 2


def test_scores_are_sigmoid_of_label_logit_gap(prm):
    problem, steps = "Ann has 2 bags.", ["2 * 3 = 6.", "The answer is 6."]
    [scores], tokens = prm.score([ScoreRequest(problem, steps)])
    ids, tags = prm.builder.build(problem, steps)
    assert tokens == len(ids)
    with torch.no_grad():
        logits = prm.model(input_ids=torch.tensor([ids])).logits[0]
    expected = [
        float(torch.sigmoid(logits[t, prm.builder.pos_id] - logits[t, prm.builder.neg_id]))
        for t in tags
    ]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in scores)


def test_batching_and_prefixes_do_not_change_scores(prm):
    problem = "Ann has 2 bags with 3 apples each."
    long = ["2 * 3 = 6.", "6 - 1 = 5.", "The answer is 5."]
    reqs = [
        ScoreRequest(problem, long[:1]),
        ScoreRequest(problem, long),
        ScoreRequest("Other?", ["x"]),
    ]
    batched, _ = prm.score(reqs)
    singles = [prm.score([r])[0][0] for r in reqs]
    for a, b in zip(batched, singles):
        assert a == pytest.approx(b, abs=1e-4)
    # causal: the score of step 1 does not depend on later steps, so prefix scores can be cached
    assert batched[1][0] == pytest.approx(batched[0][0], abs=1e-4)


def test_multi_token_tag_is_rejected(prm):
    with pytest.raises(ReasonerError, match="not a single token"):
        PRMInputBuilder(prm.tokenizer, StepFormat(step_tag="no such tag here"))


def test_child_chains_reuse_the_scored_parent(tiny_ckpt):
    warm, cold = HFPRM(tiny_ckpt), HFPRM(tiny_ckpt, prefix_cache_mb=0)
    problem = "Ann has 2 bags with 3 apples each."
    parent = ["2 * 3 = 6.", "6 - 1 = 5."]
    children = [parent + ["The answer is 5."], parent + ["So 5 + 0 = 5. The answer is 5."]]
    _, parent_tokens = warm.score([ScoreRequest(problem, parent)])
    warm_scores, warm_tokens = warm.score([ScoreRequest(problem, c) for c in children])
    cold_scores, cold_tokens = cold.score([ScoreRequest(problem, c) for c in children])
    for w, c in zip(warm_scores, cold_scores):
        assert w == pytest.approx(c, abs=1e-4)
    full = [len(warm.builder.build(problem, c)[0]) for c in children]
    assert cold_tokens == sum(full)
    assert warm_tokens == sum(n - parent_tokens for n in full)  # only the new steps were encoded


def test_first_step_candidates_share_one_encoding_of_the_problem(tiny_ckpt):
    warm, cold = HFPRM(tiny_ckpt), HFPRM(tiny_ckpt, prefix_cache_mb=0)
    problem = "Tom buys 4 pens at 3 dollars each and pays with 20 dollars."
    firsts = [["4 * 3 = 12."], ["4 + 3 = 7."], ["20 - 12 = 8."]]
    warm_scores, warm_tokens = warm.score([ScoreRequest(problem, s) for s in firsts])
    cold_scores, cold_tokens = cold.score([ScoreRequest(problem, s) for s in firsts])
    for w, c in zip(warm_scores, cold_scores):
        assert w == pytest.approx(c, abs=1e-4)
    head = len(warm.builder.build(problem, [])[0])
    assert cold_tokens == sum(len(warm.builder.build(problem, s)[0]) for s in firsts)
    assert warm_tokens == cold_tokens - 2 * head  # the problem was encoded once, not 3 times
    # a single chain has nothing to share with: no extra prefix pass
    _, lone = warm.score([ScoreRequest("Another problem: 5 + 5?", ["5 + 5 = 10."])])
    assert lone == len(warm.builder.build("Another problem: 5 + 5?", ["5 + 5 = 10."])[0])


def test_a_branch_from_inside_a_scored_rollout_reuses_it(tiny_ckpt):
    """MCTS scores a whole rollout at once, then may expand one of its inner steps."""
    warm, cold = HFPRM(tiny_ckpt), HFPRM(tiny_ckpt, prefix_cache_mb=0)
    problem = "Ann has 2 bags with 3 apples each."
    rollout = ["2 * 3 = 6.", "6 - 1 = 5.", "The answer is 5."]
    branch = rollout[:2] + ["So 5 + 0 = 5. The answer is 5."]
    warm.score([ScoreRequest(problem, rollout)])
    [warm_scores], warm_tokens = warm.score([ScoreRequest(problem, branch)])
    [cold_scores], _ = cold.score([ScoreRequest(problem, branch)])
    assert warm_scores == pytest.approx(cold_scores, abs=1e-4)
    inner = warm.builder.build(problem, rollout[:2])[0]
    assert warm_tokens == len(warm.builder.build(problem, branch)[0]) - len(inner)


def test_batches_keep_similar_chains_together_and_cover_each_once(prm):
    """Padding-aware grouping: equal-size chains share a pass, a very long one gets its own."""
    built = [([0] * n, []) for n in (10, 10, 10, 10, 200)]
    plans = [Plan()] * len(built)  # nothing cached
    batches = prm._batches(built, plans)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert [0, 1, 2, 3] in [sorted(b) for b in batches] and [4] in batches
    prm.max_padding, saved = 1e9, prm.max_padding  # padding allowed: one pass holds all
    try:
        assert len(prm._batches(built, plans)) == 1
    finally:
        prm.max_padding = saved


# The shipped LM PRM's scores and tokens, computed at commit 6166599 (before the PRM formats of
# issue #16), on one thread. The last bits depend on the batch layout (which chains share a cached
# prefix) and on the installed transformers' attention path (a fresh environment with
# transformers 5.19.0 differs from them by up to 3e-7, measured), so they are pinned to 1e-6, far
# below what a wrong readout position, label token or input layout would move.
APPLES = "Ann has 2 bags with 3 apples each. She eats 1 apple. How many apples are left?"
PENS = "Tom buys 4 pens at 3 dollars each. How much does he pay?"
PINNED_REQUESTS = [
    (APPLES, ["Ann has 2 * 3 = 6 apples.", "She has 6 - 1 = 5 apples left. The answer is 5."]),
    (PENS, ["4 * 3 = 12.", "The answer is 12."]),
    (PENS, ["4 + 3 = 7.", "The answer is 7."]),
    (APPLES, ["Ann has 2 * 3 = 6 apples."]),
]
PINNED_SCORES = [
    [0.6494774222373962, 0.4760763943195343],
    [0.5563734173774719, 0.5480147004127502],
    [0.8319239616394043, 0.4949990212917328],
    [0.649477481842041],
]


def test_embedded_lm_scores_are_pinned():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prm = HFPRM("embedded-lm")
        scores, tokens = prm.score([ScoreRequest(q, s) for q, s in PINNED_REQUESTS])
    finally:
        torch.set_num_threads(saved)
    assert prm.builder.format.tokenize == "pieces"  # the flat fields of its step_format.json
    assert tokens == 141
    assert scores == [pytest.approx(row, abs=1e-6) for row in PINNED_SCORES]

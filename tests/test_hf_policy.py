"""The HF policy backend against the real model: exact prefixes, shared prefill, seeds, caps."""

import pytest
import torch

from reasoner.models.base import GenRequest
from reasoner.models.hf_policy import HFPolicy
from reasoner.types import ReasonerError


@pytest.fixture(scope="module")
def policy(tiny_ckpt):
    return HFPolicy(tiny_ckpt)


def teacher_forced_logprob(policy, prefix, new_ids):
    ids = torch.tensor([prefix + new_ids])
    with torch.no_grad():
        logp = torch.log_softmax(policy.model(input_ids=ids).logits[0].float(), -1)
    return sum(float(logp[len(prefix) - 1 + i, t]) for i, t in enumerate(new_ids))


def test_logprobs_match_a_full_forward_pass(policy):
    """Left padding, position ids and the shared, repeated KV cache give the exact model probabilities."""
    short = policy.encode_prompt("Ann has 2 bags.")
    long = policy.encode_prompt("Ann has 7 bags with 4 apples each. She eats 3 apples. How many?")
    out = policy.generate([GenRequest(short, 3, seed=1), GenRequest(long, 2, seed=2)])
    assert [len(o) for o in out] == [3, 2]
    for prefix, conts in ((short, out[0]), (long, out[1])):
        for c in conts:
            ids = [t for s in c.steps for t in s.token_ids]
            assert len(ids) == c.new_tokens > 0
            lp = sum(s.logprob for s in c.steps)
            assert lp == pytest.approx(teacher_forced_logprob(policy, prefix, ids), abs=1e-3)


def test_prefix_is_prefilled_once_per_request(policy):
    ids = policy.encode_prompt("Ann has 2 bags.")
    [conts] = policy.generate([GenRequest(ids, 4, seed=0)])
    assert [c.prompt_tokens for c in conts] == [len(ids), 0, 0, 0]


def test_same_seed_same_samples_whatever_the_batch(policy):
    ids = policy.encode_prompt("Ann has 2 bags.")
    other = policy.encode_prompt("Bob has 9 boxes with 3 pens each.")
    alone = policy.generate([GenRequest(ids, 3, seed=7)])[0]
    mixed = policy.generate([GenRequest(other, 5, seed=1), GenRequest(ids, 3, seed=7)])[1]
    assert [c.steps[0].token_ids for c in alone] == [c.steps[0].token_ids for c in mixed]
    different = policy.generate([GenRequest(ids, 3, seed=8)])[0]
    assert [c.steps[0].token_ids for c in alone] != [c.steps[0].token_ids for c in different]


def test_an_untrained_model_is_cut_at_the_step_cap(policy):
    ids = policy.encode_prompt("Ann has 2 bags.")
    [conts] = policy.generate([GenRequest(ids, 2, seed=3)])
    for c in conts:
        if not c.finished and len(c.steps[-1].token_ids) >= policy.step_format.max_step_tokens:
            assert c.truncated and c.steps[-1].truncated


def test_trained_policy_stops_at_the_delimiter_and_eos(trained_ckpt):
    policy = HFPolicy(trained_ckpt)
    ids = policy.encode_prompt(
        "Ann has 3 bags with 5 apples each. She eats 4 apples. How many apples are left?"
    )
    [[step]] = policy.generate([GenRequest(ids, 1, seed=0, temperature=0.0)])
    assert len(step.steps) == 1 and not step.finished
    assert policy.step_format.delimiter in policy.tokenizer.decode(step.steps[0].token_ids)
    assert "\n" not in step.steps[0].text
    [[full]] = policy.generate([GenRequest(ids, 1, seed=0, temperature=0.0, mode="end")])
    assert full.finished and len(full.steps) >= 2
    assert full.steps[0].token_ids == step.steps[0].token_ids  # greedy: same first step either way


def test_prompt_longer_than_context_is_a_clear_error(policy):
    with pytest.raises(ReasonerError, match="context"):
        policy.encode_prompt("apples " * 2000)


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ReasonerError, match="does not exist"):
        HFPolicy(tmp_path / "nope")


def test_children_reuse_the_parent_kv_exactly(trained_ckpt):
    """A child expanded from a cached parent chain encodes one token, and its probabilities are exact."""
    policy = HFPolicy(trained_ckpt)
    cold = HFPolicy(trained_ckpt, prefix_cache_mb=0)
    ids = policy.encode_prompt(
        "Ann has 3 bags with 5 apples each. She eats 4 apples. How many apples are left?"
    )
    [[first]] = policy.generate([GenRequest(ids, 1, seed=0, temperature=0.0)])
    child = ids + first.steps[0].token_ids
    other = policy.encode_prompt("Bob has 2 bags.")
    warm_out = policy.generate([GenRequest(other, 2, seed=5), GenRequest(child, 3, seed=1)])
    cold_out = cold.generate([GenRequest(other, 2, seed=5), GenRequest(child, 3, seed=1)])
    assert warm_out[1][0].prompt_tokens == 1 and cold_out[1][0].prompt_tokens == len(child)
    assert policy.prefix_cache.hits >= 1
    for w, c in zip(warm_out[1], cold_out[1]):
        assert [s.token_ids for s in w.steps] == [s.token_ids for s in c.steps]
        ids_w = [t for s in w.steps for t in s.token_ids]
        assert sum(s.logprob for s in w.steps) == pytest.approx(
            teacher_forced_logprob(policy, child, ids_w), abs=1e-3
        )

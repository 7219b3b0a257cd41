"""The step rules both policy backends share, fed the same token sequences.

HFPolicy calls StepRules.advance on each token it samples; VLLMPolicy gets whole samples from vLLM
(cut at the delimiter stop string, end-of-sequence or max_tokens, resumed when the rules say a
step is not over) and replays them through the same rules. Here a scripted stand-in for vLLM's
engine emits given token sequences with vLLM's stop semantics, so VLLMPolicy.generate runs for
real without vLLM, and its continuations must equal the token-by-token (HF) replay of the same
sequences, for any sequence (hypothesis).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.models.base import GenRequest
from reasoner.models.resolve import embedded_dir, load_step_format, load_tokenizer
from reasoner.models.step_rules import StepRules, check_requests, row_caps, start_rows
from reasoner.models.vllm_policy import VLLMPolicy
from reasoner.types import ReasonerError

TOKENIZER = load_tokenizer(embedded_dir("policy"))
FORMAT = load_step_format(embedded_dir("policy"), None)
NEWLINE = TOKENIZER.encode("\n", add_special_tokens=False)[0]  # the delimiter is two of them
EOS = TOKENIZER.eos_token_id
WORDS = TOKENIZER.encode("2 + 3 = 5. The answer is 5.", add_special_tokens=False)
CONTEXT = 512


def logprob(position: int) -> float:
    """The scripted logprob of the token at `position` of a continuation (exact in binary)."""
    return -((position % 5) + 1) / 8


def hf_replay(rules: StepRules, request: GenRequest, script: list[int]):
    """What HFPolicy does with sampled tokens: each goes through rules.advance until it says stop."""
    [row] = start_rows([request], rules.step_format, CONTEXT)
    for position, tok in enumerate(script):
        if not rules.advance(row, tok, logprob(position)):
            break
    return row.cont


class ScriptedEngine:
    """vLLM's LLM.generate over scripted continuations (one per prefix): a sample stops after a
    stop token, when its text holds a stop string, or at max_tokens, like vLLM's."""

    def __init__(self, tokenizer, scripts: dict[tuple[int, ...], list[int]]):
        self.tokenizer = tokenizer
        self.scripts = scripts
        self.calls = 0

    def generate(self, prompts, params, use_tqdm=False):
        self.calls += 1
        outs = []
        for prompt, p in zip(prompts, params):
            ids = prompt["prompt_token_ids"]
            prefix = max((k for k in self.scripts if tuple(ids[: len(k)]) == k), key=len)
            script, done = self.scripts[prefix], len(ids) - len(prefix)
            assert ids[len(prefix) :] == script[:done]  # a resumed sample continues its script
            emitted: list[int] = []
            for tok in script[done:]:
                emitted.append(tok)
                text = self.tokenizer.decode(emitted, skip_special_tokens=True)
                if (
                    tok in p.stop_token_ids
                    or len(emitted) >= p.max_tokens
                    or any(s in text for s in p.stop or [])
                ):
                    break
            lps = [{t: SimpleNamespace(logprob=logprob(done + i))} for i, t in enumerate(emitted)]
            sample = SimpleNamespace(index=0, token_ids=emitted, logprobs=lps)
            outs.append(SimpleNamespace(outputs=[sample], num_cached_tokens=0))
        return outs


def scripted_vllm_policy(scripts: dict, step_format) -> VLLMPolicy:
    """A VLLMPolicy whose engine is a ScriptedEngine (no vLLM needed)."""
    policy = object.__new__(VLLMPolicy)
    policy.tokenizer = TOKENIZER
    policy.eos_ids = {EOS}
    policy.rules = StepRules(TOKENIZER, step_format, policy.eos_ids)
    policy.top_p = 1.0
    policy.max_context = CONTEXT
    policy.llm = ScriptedEngine(TOKENIZER, scripts)
    policy._SamplingParams = SimpleNamespace
    policy._TokensPrompt = dict
    return policy


def as_tuple(cont):
    steps = [(s.text, s.token_ids, s.logprob, s.truncated) for s in cont.steps]
    return steps, cont.finished, cont.truncated, cont.new_tokens


# mostly newlines (so delimiters, bare ones too), some end-of-sequence and special tokens
TOKENS = st.one_of(
    st.just(NEWLINE),
    st.just(NEWLINE),
    st.sampled_from(WORDS),
    st.sampled_from([EOS, 0, 1, 3]),
    st.integers(4, len(TOKENIZER) - 1),
)


@settings(max_examples=150, deadline=None)
@given(
    scripts=st.lists(st.lists(TOKENS, min_size=1, max_size=40), min_size=1, max_size=4),
    mode=st.sampled_from(["step", "end"]),
    max_step_tokens=st.integers(1, 8),
    max_steps=st.integers(1, 4),
)
def test_vllm_replay_equals_hf_token_by_token(scripts, mode, max_step_tokens, max_steps):
    fmt = dataclasses.replace(FORMAT, max_step_tokens=max_step_tokens, max_steps=max_steps)
    filler = WORDS * 8  # longer than any cap: the rules end every continuation, not the script
    requests = [GenRequest([1, 100 + i], 1, i, mode, 0.0) for i in range(len(scripts))]
    full = {tuple(r.prefix_ids): s + filler for r, s in zip(requests, scripts)}
    policy = scripted_vllm_policy(full, fmt)
    got = policy.generate(requests)
    rules = StepRules(TOKENIZER, fmt, {EOS})
    for request, [cont] in zip(requests, got):
        want = hf_replay(rules, request, full[tuple(request.prefix_ids)])
        assert as_tuple(cont) == as_tuple(want)


@settings(max_examples=150, deadline=None)
@given(
    script=st.lists(TOKENS, min_size=1, max_size=60),
    mode=st.sampled_from(["step", "end"]),
    max_step_tokens=st.integers(1, 8),
    max_steps=st.integers(1, 4),
)
def test_rules_keep_the_prefix_exact_and_respect_the_caps(script, mode, max_step_tokens, max_steps):
    fmt = dataclasses.replace(FORMAT, max_step_tokens=max_step_tokens, max_steps=max_steps)
    request = GenRequest([1, 100], 1, 0, mode, 0.0)
    cont = hf_replay(StepRules(TOKENIZER, fmt, {EOS}), request, script + WORDS * 8)
    consumed = (script + WORDS * 8)[: cont.new_tokens]
    assert [t for s in cont.steps for t in s.token_ids] == consumed  # nothing dropped or re-made
    _, cap = row_caps(request, fmt, CONTEXT)
    assert 1 <= cont.new_tokens <= cap
    assert len(cont.steps) <= (max_steps if mode == "end" else 1)
    assert all(fmt.delimiter not in s.text for s in cont.steps)
    assert not (cont.finished and cont.truncated)
    assert cont.finished == (consumed[-1] == EOS) and EOS not in consumed[:-1]
    if cont.truncated:
        assert cont.steps[-1].truncated
    assert sum(s.logprob for s in cont.steps) == sum(logprob(i) for i in range(len(consumed)))


def _row(rules, mode="step", max_steps=1):
    [row] = start_rows([GenRequest([1], 1, 0, mode, 0.0, max_steps)], rules.step_format, 97)
    return row


def test_a_bare_eos_joins_the_previous_step_and_caps_truncate():
    rules = StepRules(TOKENIZER, FORMAT, {EOS})
    row = _row(rules, "end", 3)
    ids = TOKENIZER.encode("2 + 3 = 5.\n\n", add_special_tokens=False)
    for t in [*ids, NEWLINE, NEWLINE]:
        assert rules.advance(row, t, -1.0)
    assert rules.advance(row, EOS, -1.0) is False
    (step,) = row.cont.steps
    assert step.token_ids == [*ids, NEWLINE, NEWLINE, EOS] and row.cont.finished
    short = StepRules(TOKENIZER, dataclasses.replace(FORMAT, max_step_tokens=3), {EOS})
    row = _row(short, "end", 3)
    assert [short.advance(row, t, 0.0) for t in WORDS[:3]] == [True, True, False]
    assert row.cont.truncated and row.cont.steps[-1].truncated and row.cont.new_tokens == 3


def test_caps_and_request_checks():
    assert row_caps(GenRequest([1] * 10, 1, 0, "step"), FORMAT, 512) == (1, FORMAT.max_step_tokens)
    end = GenRequest([1] * 10, 1, 0, "end", max_steps=2)
    assert row_caps(end, FORMAT, 512) == (2, 2 * FORMAT.max_step_tokens)
    assert row_caps(end, FORMAT, 50) == (2, 39)  # the context bounds the cap
    with pytest.raises(ReasonerError, match="k must be >= 1"):
        check_requests([GenRequest([1], 0, 0)], 512)
    with pytest.raises(ReasonerError, match="exceeds the policy context 4"):
        check_requests([GenRequest([1, 2, 3, 4], 1, 0)], 4)


def test_resumed_samples_use_the_rules_not_the_stop_string():
    """vLLM stops at the first delimiter; after a bare one the rules resume the sample."""
    fmt = FORMAT
    script = [NEWLINE, NEWLINE, *WORDS[:4], NEWLINE, NEWLINE, EOS]
    request = GenRequest([1, 7], 1, 0, "step", 0.0)
    policy = scripted_vllm_policy({(1, 7): script + WORDS * 30}, fmt)
    [[cont]] = policy.generate([request])
    assert policy.llm.calls >= 2  # the bare delimiter was resumed in a follow-up request
    want = hf_replay(StepRules(TOKENIZER, fmt, {EOS}), request, script + WORDS * 30)
    assert as_tuple(cont) == as_tuple(want)

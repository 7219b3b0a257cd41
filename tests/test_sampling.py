"""The counter-based sampler: exact integer mixing, correct distribution, batch independence."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.models.sampling import (
    _MASK,
    _mix32,
    _mix32_int,
    gumbel_noise,
    row_key,
    sample_tokens,
)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_tensor_mixer_equals_the_integer_mixer(values):
    got = _mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [_mix32_int(v) for v in values]


def reference_noise(key: int, counter: int, token: int) -> float:
    """One entry of gumbel_noise by the integer mixer, in Python floats (the definition)."""
    step = _mix32_int(key ^ ((counter * 0x9E3779B1) & _MASK))
    bits = _mix32_int(_mix32_int(step ^ ((token * 0x632BE5AB) & _MASK)) ^ 0x5BD1E995)
    u = (bits + 0.5) / 4294967296.0
    return -math.log(-math.log(u))


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 5000)), min_size=1, max_size=8),
    st.integers(1, 300),
)
@settings(max_examples=40, deadline=None)
def test_noise_is_its_integer_definition_bit_for_bit(rows, vocab):
    keys = torch.tensor([k for k, _ in rows], dtype=torch.int64)
    counters = torch.tensor([c for _, c in rows], dtype=torch.int64)
    noise = gumbel_noise(keys, counters, vocab)
    want = torch.tensor(
        [[reference_noise(k, c, t) for t in range(vocab)] for k, c in rows], dtype=torch.float64
    ).to(torch.float32)
    assert torch.equal(noise.view(torch.int32), want.view(torch.int32))


def test_noise_is_gumbel_distributed():
    keys = torch.tensor([row_key(7, j) for j in range(64)], dtype=torch.int64)
    noise = gumbel_noise(keys, torch.arange(64, dtype=torch.int64), 1024)
    assert abs(noise.mean().item() - 0.5772) < 0.01  # Euler-Mascheroni
    assert abs(noise.var().item() - math.pi**2 / 6) < 0.03


def test_sample_frequencies_follow_the_softmax():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 4000
    logits = probs.log().expand(rows, 4)
    keys = torch.tensor([row_key(3, j) for j in range(rows)], dtype=torch.int64)
    tok, lp = sample_tokens(logits, torch.ones(rows), keys, torch.zeros(rows, dtype=torch.int64))
    freq = torch.bincount(tok, minlength=4).float() / rows
    assert torch.allclose(freq, probs, atol=0.03)
    assert torch.allclose(lp, probs.log()[tok])


def test_temperature_zero_is_argmax_and_top_p_cuts_the_tail():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]]).expand(500, 4)
    keys = torch.tensor([row_key(1, j) for j in range(500)], dtype=torch.int64)
    counters = torch.zeros(500, dtype=torch.int64)
    greedy, _ = sample_tokens(logits, torch.zeros(500), keys, counters)
    assert set(greedy.tolist()) == {1}
    nucleus, _ = sample_tokens(logits, torch.ones(500), keys, counters, top_p=0.6)
    assert set(nucleus.tolist()) <= {1, 2}  # p(1) ~ 0.61 alone reaches 0.6; 2 never needed
    assert set(nucleus.tolist()) == {1}


def test_a_rows_sample_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    logits = torch.randn(6, 50)
    keys = torch.tensor([row_key(11, j) for j in range(6)], dtype=torch.int64)
    counters = torch.tensor([0, 3, 5, 7, 9, 11], dtype=torch.int64)
    temps = torch.full((6,), 0.8)
    full, _ = sample_tokens(logits, temps, keys, counters)
    order = torch.tensor([4, 0, 5])
    part, _ = sample_tokens(logits[order], temps[order], keys[order], counters[order])
    assert part.tolist() == full[order].tolist()
    assert row_key(11, 0) != row_key(11, 1) != row_key(12, 0)

"""Batched, batch-independent token sampling: counter-based Gumbel noise.

A row's noise is a pure function of (row key, token index, vocabulary id), computed for the whole
batch with a few integer tensor ops (a 32-bit murmur3-style mixer). So a row samples the same tokens
whatever else shares its batch, in whatever order, and no per-row Python loop or torch.Generator
is needed: the sampler stays one vectorized call per decoding step.
"""

from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """murmur3 fmix32 on int64 tensors holding 32-bit values (low 32 bits kept after each multiply)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _MASK
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _MASK
    return x ^ (x >> 16)


def _mix32_int(x: int) -> int:
    x &= _MASK
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _MASK
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _MASK
    return x ^ (x >> 16)


def row_key(seed: int, index: int) -> int:
    """A 32-bit stream key for sample `index` of a request seeded with `seed`."""
    s = seed & 0xFFFFFFFFFFFFFFFF
    h = _mix32_int((s & _MASK) ^ 0x9E3779B9)
    h = _mix32_int(h ^ (s >> 32) ^ 0x7F4A7C15)
    return _mix32_int(h ^ (index & _MASK) * 0x27D4EB2F)


def _signed32(x: int) -> int:
    """A 32-bit value as the int32 with the same bits."""
    return x - (1 << 32) if x >= 1 << 31 else x


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """int64 tensor of 32-bit values -> int32 tensor with the same bits."""
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


_M1, _M2, _SALT = _signed32(0x85EBCA6B), _signed32(0xC2B2AE35), _signed32(0x5BD1E995)


def _mix32_inplace(x: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """_mix32 on an int32 tensor, in place (`tmp`: scratch of its shape): int32 products wrap
    modulo 2^32 and a shift masked to its width is the logical shift, so the bits are
    _mix32's with a quarter of its memory traffic (the (rows, vocab) noise is most of a CPU
    decoding step's sampling cost at a real vocabulary)."""
    torch.bitwise_right_shift(x, 16, out=tmp)
    x ^= tmp.bitwise_and_(0xFFFF)
    x *= _M1
    torch.bitwise_right_shift(x, 13, out=tmp)
    x ^= tmp.bitwise_and_(0x7FFFF)
    x *= _M2
    torch.bitwise_right_shift(x, 16, out=tmp)
    x ^= tmp.bitwise_and_(0xFFFF)
    return x


def gumbel_noise(keys: torch.Tensor, counters: torch.Tensor, vocab: int) -> torch.Tensor:
    """Gumbel(0, 1) noise of shape (rows, vocab) for rows with stream `keys` at token `counters`.

    Bit u of (row, id) is mix(mix(step(row) ^ h(id)) ^ salt), u -> (u + 0.5) / 2^32 in float64,
    noise = -log(-log(u)) rounded to float32."""
    step = _mix32(keys ^ ((counters * 0x9E3779B1) & _MASK))
    ids = (torch.arange(vocab, dtype=torch.int64, device=keys.device) * 0x632BE5AB) & _MASK
    bits = _as_int32(step)[:, None] ^ _as_int32(ids)[None, :]
    tmp = torch.empty_like(bits)
    _mix32_inplace(bits, tmp)
    bits ^= _SALT
    _mix32_inplace(bits, tmp)
    u = torch.remainder(bits.to(torch.float64), 4294967296.0)  # the bits as unsigned
    u += 0.5
    u /= 4294967296.0
    return (-torch.log(-torch.log(u))).to(torch.float32)


def sample_tokens(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    keys: torch.Tensor,
    counters: torch.Tensor,
    top_p: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row: argmax at temperature 0, else Gumbel-max on tempered, top-p logits.

    Returns (token ids, their log-probabilities under the untempered distribution).
    """
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    greedy = temperatures <= 0
    z = logits / torch.where(greedy, torch.ones_like(temperatures), temperatures)[:, None]
    if top_p < 1.0:
        probs = torch.softmax(z, dim=-1)
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        cut_sorted = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        cut = torch.zeros_like(cut_sorted).scatter(-1, order, cut_sorted)
        z = z.masked_fill(cut, float("-inf"))
    noisy = z + gumbel_noise(keys, counters, logits.shape[-1])
    chosen = torch.where(greedy, logits.argmax(-1), noisy.argmax(-1))
    return chosen, logp.gather(-1, chosen[:, None]).squeeze(-1)

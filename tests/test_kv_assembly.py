"""Batch assembly over cached prefixes (kv_reuse): a row's KV taken as its cached prefix plus views
of its new columns is bit for bit the row's KV gathered whole, and KVPath windows are exact."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from reasoner.models.kv_reuse import KVPath, extract, extract_tail, forward_cached, kv_length


def bits_equal(a, b) -> bool:
    a = a.flat() if isinstance(a, KVPath) else a
    b = b.flat() if isinstance(b, KVPath) else b
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(x.view(torch.int32), y.view(torch.int32))
        for (ka, va), (kb, vb) in zip(a, b)
        for x, y in ((ka, kb), (va, vb))
    )


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg).eval()


@torch.no_grad()
def test_a_rows_tail_over_its_prefix_is_the_rows_whole_kv():
    model = tiny_model()
    prompts = [[1, 5, 7, 9, 11], [1, 5, 8], [2, 3, 4, 6, 8, 10, 12]]
    out, _, mask, _ = forward_cached(model, [None] * 3, prompts, 0, True)
    first = [extract(out.past_key_values, b, mask[b]) for b in range(3)]
    # the next call: row 0 extends a KV list, row 1 a path of two segments, row 2 nothing
    path = KVPath(
        [[(k[:, :2], v[:, :2]) for k, v in first[1]], [(k[:, 2:], v[:, 2:]) for k, v in first[1]]]
    )
    cached = [first[0], path, None]
    suffixes = [[13, 14], [15, 16, 17, 18], [2, 3, 4, 6, 8, 10, 12, 19]]
    out, input_ids, mask, _ = forward_cached(model, cached, suffixes, 0, True, headroom=8)
    width_c = mask.shape[1] - input_ids.shape[1]
    for b in range(3):
        whole = extract(out.past_key_values, b, mask[b])
        tail = extract_tail(out.past_key_values, b, mask[b], width_c, cached[b])
        assert kv_length(tail) == kv_length(whole) == kv_length(cached[b]) + len(suffixes[b])
        assert bits_equal(tail, whole)
    # and each row's last logits are those of its sequence computed alone, uncached
    for b, seq in enumerate([prompts[0] + suffixes[0], prompts[1] + suffixes[1], suffixes[2]]):
        alone = model(input_ids=torch.tensor([seq])).logits[0, -1]
        assert torch.allclose(out.logits[b, -1], alone, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    data=st.data(),
)
def test_kvpath_windows_and_prefixes_are_the_flat_kvs_slices(lengths, data):
    total = sum(lengths)
    whole = [(torch.randn(2, total, 3), torch.randn(2, total, 3)) for _ in range(2)]
    segments, at = [], 0
    for n in lengths:
        segments.append([(k[:, at : at + n], v[:, at : at + n]) for k, v in whole])
        at += n
    path = KVPath(segments)
    start = data.draw(st.integers(0, total))
    end = data.draw(st.integers(start, total))
    want = [(k[:, start:end], v[:, start:end]) for k, v in whole]
    assert bits_equal(path.window(start, end), want)
    cut = data.draw(st.integers(0, total))
    prefix = path.prefix(cut)
    assert len(prefix) == cut
    assert bits_equal(prefix.flat(), [(k[:, :cut], v[:, :cut]) for k, v in whole])


def test_the_flat_cache_keeps_its_own_copy_of_a_path_of_views():
    """A path whose only tokens are views of a batch buffer (an empty prefix segment beside
    them) is stored as a copy: writing to the buffer later does not change the entry."""
    from reasoner.models.kv_reuse import PrefixKVCache

    buffer = torch.randn(2, 6, 3)
    empty = [(buffer[:, :0], buffer[:, :0])]
    path = KVPath([empty, [(buffer[:, 2:5], buffer[:, 2:5])]])
    cache = PrefixKVCache()
    cache.put((1, 2, 3), path)
    before = cache.get((1, 2, 3))[0][0].clone()
    buffer.zero_()
    assert torch.equal(cache.get((1, 2, 3))[0][0], before)

"""The radix KV cache: exact lookups, memory per node proportional to its own tokens, leaf-first
LRU under a byte budget, and searches byte for byte equal to the flat PrefixKVCache's."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.models.kv_reuse import KVPath, PrefixKVCache, kv_length
from reasoner.models.radix_cache import RadixKVCache, make_prefix_cache
from reasoner.types import ReasonerError

LAYERS, HEADS, DIM = 2, 2, 4
TOKEN_BYTES = LAYERS * 2 * HEADS * DIM * 4  # float32 keys and values of one token


def kv_of(tokens: list[int], salt: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A deterministic KV for a token sequence: position t's values depend on tokens[: t + 1]
    (as a causal model's do) and on `salt` (another batch layout's last bits)."""
    out = []
    for layer in range(LAYERS):
        rows = []
        h = 0
        for i, t in enumerate(tokens):
            h = (h * 31 + t + 7 * layer) % 997
            rows.append(torch.full((HEADS, DIM), float(h) + (salt if i >= 2 else 0) * 1e-3))
        k = torch.stack(rows, 1) if rows else torch.zeros(HEADS, 0, DIM)
        out.append((k, -k))
    return out


def flat(kv) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return kv.flat() if isinstance(kv, KVPath) else kv


def same_bits(a, b) -> bool:
    a, b = flat(a), flat(b)
    return len(a) == len(b) and all(
        torch.equal(x.view(torch.int32), y.view(torch.int32))
        for (ka, va), (kb, vb) in zip(a, b)
        for x, y in ((ka, kb), (va, vb))
    )


def test_a_child_costs_only_its_own_tokens():
    cache = RadixKVCache(1 << 20)
    parent = [1, 2, 3, 4, 5]
    cache.put(tuple(parent), kv_of(parent))
    assert cache.bytes == 5 * TOKEN_BYTES
    for step in ([6, 7], [8, 9, 10], [6, 11]):
        cache.put(tuple(parent + step), kv_of(parent + step))
    # children: 2 + 3 + 2 tokens, the last shares its first token (6) with the first child
    assert cache.stored_tokens() == 5 + 2 + 3 + 1
    assert cache.bytes == cache.stored_tokens() * TOKEN_BYTES
    flat_cache = PrefixKVCache(1 << 20)
    for seq in (parent, parent + [6, 7], parent + [8, 9, 10], parent + [6, 11]):
        flat_cache.put(tuple(seq), kv_of(seq))
    assert flat_cache.bytes == (5 + 7 + 8 + 7) * TOKEN_BYTES
    for seq in (parent, parent + [6, 7], parent + [8, 9, 10], parent + [6, 11]):
        assert same_bits(cache.get(tuple(seq)), kv_of(seq))


def test_an_inner_prefix_is_an_entry_without_new_bytes():
    cache = RadixKVCache(1 << 20)
    seq = list(range(10))
    kv = kv_of(seq)
    cache.put(tuple(seq), kv, "whole")
    cache.put(tuple(seq[:4]), [(k[:, :4], v[:, :4]) for k, v in kv], "inner")
    assert cache.bytes == 10 * TOKEN_BYTES and cache.nodes == 2
    got, payload = cache.get_entry(tuple(seq[:4]))
    assert payload == "inner" and kv_length(got) == 4 and same_bits(got, kv_of(seq[:4]))


def test_equal_tokens_with_other_bits_are_not_shared():
    """The same tokens computed in another batch layout may differ in the last bits: each
    lookup still returns exactly what was put for its key."""
    cache = RadixKVCache(1 << 20)
    a, b = [1, 2, 3, 4, 5], [1, 2, 3, 4, 6]
    cache.put(tuple(a), kv_of(a, salt=0))
    cache.put(tuple(b), kv_of(b, salt=1))  # positions 2.. differ in bits from a's
    assert same_bits(cache.get(tuple(a)), kv_of(a, salt=0))
    assert same_bits(cache.get(tuple(b)), kv_of(b, salt=1))
    assert cache.stored_tokens() == 2 + 3 + 3  # [1, 2] shared, the rest twice


def test_a_chain_computed_from_a_lookup_is_stored_below_it():
    """put(base=the KVPath the chain was computed from): the prefix is not compared again, even
    after its node was split; a base evicted since is ignored (the whole chain is compared)."""
    cache = RadixKVCache(1 << 20)
    parent = [1, 2, 3, 4, 5, 6]
    cache.put(tuple(parent), kv_of(parent))
    base = cache.get(tuple(parent))
    cache.put((1, 2, 3, 9), kv_of([1, 2, 3, 9]))  # splits the parent's node after 3 tokens
    child = parent + [7, 8]
    cache.put(tuple(child), kv_of(child), None, base)
    assert cache.stored_tokens() == 3 + 3 + 1 + 2
    assert same_bits(cache.get(tuple(child)), kv_of(child))
    small = RadixKVCache(8 * TOKEN_BYTES)
    small.put(tuple(parent), kv_of(parent))
    gone = small.get(tuple(parent))
    small.put((20, 21, 22, 23, 24), kv_of([20, 21, 22, 23, 24]))  # evicts the parent
    assert small.get(tuple(parent)) is None
    small.put(tuple(child), kv_of(child), None, gone)
    assert same_bits(small.get(tuple(child)), kv_of(child)) and small.stored_tokens() == 8


def test_a_policy_entry_holds_all_but_its_last_token():
    cache = RadixKVCache(1 << 20)
    seq = [4, 5, 6, 7]
    cache.put(tuple(seq), kv_of(seq[:-1]))
    assert kv_length(cache.get(tuple(seq))) == 3
    assert cache.get((4, 5, 6)) is None  # the key is the whole sequence
    with pytest.raises(ValueError, match="KV of 4 tokens for a key of 3"):
        cache.put((1, 2, 3), kv_of([1, 2, 3, 4]))


def test_eviction_is_leaf_first_least_recently_used():
    cache = RadixKVCache(12 * TOKEN_BYTES)
    root = [1, 2, 3, 4]
    cache.put(tuple(root), kv_of(root))
    kids = [root + [10 + i, 20 + i] for i in range(4)]
    for kid in kids[:3]:
        cache.put(tuple(kid), kv_of(kid))
    assert cache.bytes == 10 * TOKEN_BYTES
    cache.get(tuple(kids[0]))  # kids[1] is now the least recently used leaf
    cache.put(tuple(kids[3]), kv_of(kids[3]))  # 12 tokens: fits
    cache.put((1, 2, 3, 4, 99, 98, 97), kv_of([1, 2, 3, 4, 99, 98, 97]))  # 15: two must go
    assert cache.bytes <= cache.max_bytes
    assert cache.get(tuple(kids[1])) is None and cache.get(tuple(kids[2])) is None
    # the shared parent was used by every child: it stays while it has children
    assert same_bits(cache.get(tuple(root)), kv_of(root))
    assert same_bits(cache.get(tuple(kids[0])), kv_of(kids[0]))
    assert len(cache) == 4
    # an entry larger than the whole budget is not kept (nothing evicted for it)
    cache.put(tuple(range(100, 120)), kv_of(list(range(100, 120))))
    assert cache.get(tuple(range(100, 120))) is None and len(cache) == 4


def test_clear_and_bad_kind():
    cache = RadixKVCache(1 << 20)
    cache.put((1, 2), kv_of([1, 2]))
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and cache.get((1, 2)) is None
    assert make_prefix_cache("radix", 0) is None
    assert isinstance(make_prefix_cache("flat", 1), PrefixKVCache)
    with pytest.raises(ReasonerError, match=r"kv_cache must be one of \['radix', 'flat'\]"):
        make_prefix_cache("paged", 1)


sequences = st.lists(
    st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(0, 1)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(sequences, st.integers(4, 40))
def test_every_hit_is_exactly_what_was_put_and_the_budget_holds(ops, budget_tokens):
    """Random sequences over a tiny vocabulary (many shared prefixes), two bit variants."""
    cache = RadixKVCache(budget_tokens * TOKEN_BYTES)
    reference: dict[tuple[int, ...], list] = {}
    for seq, salt in ops:
        key = tuple(seq)
        if key not in cache._entries:  # (a key put again after its eviction is stored anew)
            reference[key] = kv_of(seq, salt)
        cache.put(key, kv_of(seq, salt))
        assert cache.bytes <= cache.max_bytes
        assert cache.bytes == cache.stored_tokens() * TOKEN_BYTES
        for k, kv in reference.items():
            got = cache.get(k)
            assert got is None or same_bits(got, kv)
        assert cache.get(key) is not None or len(seq) > budget_tokens


# ---- searches on the embedded models: byte for byte the flat cache's ---------------------------
def fingerprint(solutions) -> list:
    """Everything a search returns: answers, steps, scores, costs, and every tree node's tokens,
    log-probability and PRM score (floats compared exactly)."""
    return [
        (
            s.answer,
            s.steps,
            s.step_scores,
            s.score,
            s.stats.policy_tokens,
            s.stats.prm_tokens,
            [
                (n.parent, tuple(n.token_ids), n.logprob, n.prm_score, n.visits, n.value_sum)
                for n in s.tree.nodes
            ],
        )
        for s in solutions
    ]


def search(strategy: str, prm: str, kind: str, problems, mb: int | None = None):
    from reasoner import Reasoner

    opts = {"kv_cache": kind, **({"prefix_cache_mb": mb} if mb else {})}
    r = Reasoner(
        strategy=strategy,
        budget=8,
        seed=3,
        prm=prm,
        policy_options={**opts, "threads": 1},
        prm_options=dict(opts),
    )
    sols = r.solve_batch(problems)
    return sols, r


@pytest.fixture(scope="module")
def problems():
    from reasoner.synthetic import load_split

    return load_split("test")[:3]


@pytest.mark.parametrize(
    "strategy,prm",
    [
        ("beam", "embedded"),
        pytest.param("mcts", "embedded", marks=pytest.mark.slow),
        pytest.param("dvts", "embedded-lm", marks=pytest.mark.slow),
    ],
)
def test_searches_are_byte_for_byte_the_flat_caches(strategy, prm, problems):
    flat_sols, flat_r = search(strategy, prm, "flat", problems)
    radix_sols, radix_r = search(strategy, prm, "radix", problems)
    assert fingerprint(radix_sols) == fingerprint(flat_sols)
    for a, b in ((radix_r.policy, flat_r.policy), (radix_r.prm, flat_r.prm)):
        assert a.prefix_cache.hits == b.prefix_cache.hits > 0
        assert a.prefix_cache.bytes < b.prefix_cache.bytes  # the point: prefixes held once


@pytest.mark.slow
def test_under_a_binding_budget_the_radix_cache_keeps_more(problems):
    """At 2 MB the flat cache evicts entries the radix one keeps: more hits, fewer tokens
    recomputed; the search picks the same answers (scores agree to float rounding)."""
    flat_sols, flat_r = search("beam", "embedded", "flat", problems, mb=2)
    radix_sols, radix_r = search("beam", "embedded", "radix", problems, mb=2)
    assert radix_r.policy.prefix_cache.hits >= flat_r.policy.prefix_cache.hits
    assert sum(s.stats.prm_tokens for s in radix_sols) < sum(s.stats.prm_tokens for s in flat_sols)
    for a, b in zip(radix_sols, flat_sols):
        assert a.answer == b.answer
        assert a.step_scores == pytest.approx(b.step_scores, abs=1e-5)

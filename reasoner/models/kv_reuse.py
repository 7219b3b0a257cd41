"""Prefix KV reuse for HF backends: keep the KV states of token sequences the tree will extend.

A child step is generated (or scored) from its parent's chain; instead of re-encoding that chain,
the backend looks its KV states up here and only encodes the new suffix. Entries are keyed by the
exact token tuple, bounded by bytes and evicted least-recently-used. PrefixKVCache stores each
entry's whole chain; reasoner.models.radix_cache.RadixKVCache (the default) stores a tree of
segments and hands out KVPaths, which the batch assembly gathers into one padded prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape (heads, T, dim)


class KVPath:
    """The KV states of one sequence as consecutive segments (a radix cache's root-to-node path;
    `node`: the cache's node it ends at, so a chain computed from it can be stored below it)."""

    __slots__ = ("segments", "node")

    def __init__(self, segments: list[KV], node: object = None):
        self.segments = segments
        self.node = node

    def __len__(self) -> int:
        return sum(kv_length(s) for s in self.segments)

    def __bool__(self) -> bool:  # cached, even when empty (as a KV list of layers is)
        return True

    def flat(self) -> KV:
        """One KV: every layer's segments concatenated (the segment itself when only one)."""
        return self.window(0, len(self))

    def window(self, start: int, end: int, copy: bool = False) -> KV:
        """The KV of positions [start, end): views when they lie in one segment (copies with
        `copy`), else the overlapping segments' slices concatenated (a copy)."""
        parts, at = [], 0
        for seg in self.segments:
            n = kv_length(seg)
            lo, hi = max(start, at), min(end, at + n)
            if lo < hi:
                parts.append(seg if (lo, hi) == (at, at + n) else _cut(seg, lo - at, hi - at))
            at += n
        if len(parts) == 1:
            return [(k.clone(), v.clone()) for k, v in parts[0]] if copy else parts[0]
        if not parts:
            return _cut(self.segments[0], 0, 0) if self.segments else []
        return [
            (torch.cat([p[i][0] for p in parts], 1), torch.cat([p[i][1] for p in parts], 1))
            for i in range(len(parts[0]))
        ]

    def prefix(self, n: int) -> KVPath:
        """The path of the first `n` positions (views of the segments; no node)."""
        segments, at = [], 0
        for seg in self.segments:
            if at >= n and segments:
                break
            m = kv_length(seg)
            segments.append(seg if at + m <= n else _cut(seg, 0, n - at))
            at += m
        return KVPath(segments)


def _cut(kv: KV, start: int, end: int) -> KV:
    """Views of positions [start, end) of every layer."""
    return [(k[:, start:end], v[:, start:end]) for k, v in kv]


def kv_length(kv: KV | KVPath) -> int:
    """Tokens whose KV states `kv` holds."""
    if isinstance(kv, KVPath):
        return len(kv)
    return kv[0][0].shape[1] if kv else 0


def write_kv(kv: KV | KVPath, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Copy one layer of `kv` into keys/values of shape (heads, len(kv), dim), segment by segment."""
    segments = kv.segments if isinstance(kv, KVPath) else [kv]
    at = 0
    for seg in segments:
        n = seg[layer][0].shape[1]
        keys[:, at : at + n] = seg[layer][0]
        values[:, at : at + n] = seg[layer][1]
        at += n


class PrefixKVCache:
    """LRU map from a token tuple to KV states (and an optional payload, e.g. PRM step scores);
    each entry holds its whole chain's KV (kv_cache="flat"; RadixKVCache shares prefixes)."""

    COPIES_ON_PUT = False  # put keeps what it is given: a prefix of a larger KV must be a copy

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, ...], tuple[KV, object]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(kv: KV) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)

    def get(self, key: tuple[int, ...]) -> KV | None:
        """The KV states cached for exactly `key`, or None (counts a hit or a miss)."""
        entry = self.get_entry(key)
        return entry[0] if entry else None

    def get_entry(self, key: tuple[int, ...]) -> tuple[KV, object] | None:
        """(KV states, payload) cached for exactly `key`, or None; a hit becomes most recent."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(
        self, key: tuple[int, ...], kv: KV | KVPath, payload: object = None, base: object = None
    ) -> None:
        """Cache `kv` (and `payload`) for `key` unless present or too large; evict the least
        recently used entries beyond max_bytes (`base`, the radix cache's hint, is not used).
        A KVPath (views of a batch's buffers) is stored as one copy of its whole chain."""
        if self.max_bytes <= 0 or key in self._entries:
            return
        if isinstance(kv, KVPath):
            kv = kv.window(0, len(kv), copy=True)
        size = self._size(kv)
        if size > self.max_bytes:
            return
        self._entries[key] = (kv, payload)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (old, _) = self._entries.popitem(last=False)
            self._bytes -= self._size(old)

    def clear(self) -> None:
        """Forget every entry (hit and miss counts stay)."""
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes of KV held."""
        return self._bytes

    def stored_tokens(self) -> int:
        """Token positions whose KV is held (a prefix shared by entries counts once per entry)."""
        return sum(kv_length(kv) for kv, _ in self._entries.values())

    def stored_sequences(self) -> Iterator[tuple[int, ...]]:
        """The token sequence whose KV each entry holds."""
        for key, (kv, _) in self._entries.items():
            yield key[: kv_length(kv)]


class GrowingLayer(DynamicLayer):
    """A DynamicCache layer that grows in place (amortized doubling) instead of concatenating.

    transformers' DynamicLayer copies the whole cache at every decoded token (torch.cat), which
    made KV copying the largest cost of decoding the tiny policy; here a token costs one write.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self._len = 0

    def update(self, key_states, value_states, *args, **kwargs):
        """Append new tokens' keys and values, growing the buffers by doubling when full."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        need = self._len + new
        if self._k is None or need > self._k.shape[-2]:
            cap = max(need + 64, 2 * (self._k.shape[-2] if self._k is not None else 0))
            k = key_states.new_empty((*key_states.shape[:2], cap, key_states.shape[-1]))
            v = value_states.new_empty((*value_states.shape[:2], cap, value_states.shape[-1]))
            if self._len:
                k[:, :, : self._len] = self._k[:, :, : self._len]
                v[:, :, : self._len] = self._v[:, :, : self._len]
            self._k, self._v = k, v
        self._k[:, :, self._len : need] = key_states
        self._v[:, :, self._len : need] = value_states
        self._len = need
        self.keys, self.values = self._k[:, :, :need], self._v[:, :, :need]
        return self.keys, self.values

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """Start from preallocated buffers whose first `length` positions hold the states (the
        rest is capacity for the tokens to come)."""
        self.lazy_initialization(keys[:, :, :0], values[:, :, :0])
        self._k, self._v, self._len = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._len:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys = self._k[:, :, : self._len]
            self.values = self._v[:, :, : self._len]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._len:
            self.batch_select_indices(torch.arange(self._k.shape[0]).repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("growing caches are never cropped")


def growing_cache() -> DynamicCache:
    """A DynamicCache whose layers are GrowingLayers."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


def assemble(
    cached: list[KV | KVPath | None], suffixes: list[list[int]], pad_id: int, headroom: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """A batch of [pad][cached prefix][pad][suffix] rows: input ids, mask, positions, cache.

    Cached prefixes are left-padded to a common width and the suffixes to another; padding is
    masked, and positions count only real tokens, so every row sees exactly its own sequence.
    `headroom`: positions the cache's buffers keep free past the suffix (tokens to decode).
    """
    batch = len(suffixes)
    cached_len = [kv_length(kv) if kv else 0 for kv in cached]
    width_c = max(cached_len)
    width_s = max(len(s) for s in suffixes)
    input_ids = torch.full((batch, width_s), pad_id, dtype=torch.long)
    mask = torch.zeros((batch, width_c + width_s), dtype=torch.long)
    for b, (c, s) in enumerate(zip(cached_len, suffixes)):
        input_ids[b, width_s - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[b, width_c - c : width_c] = 1
        mask[b, width_c + width_s - len(s) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:]
    cache = growing_cache()
    if width_c:
        # each layer's buffer has room for the suffix and a first stretch of decoding, so the
        # prefix is copied once (padding is zeroed: masked, but it must not be NaN)
        capacity = width_c + width_s + headroom
        first = next(kv for kv in cached if kv)
        template = first.segments[0] if isinstance(first, KVPath) else first
        for k0, v0 in template:
            keys = k0.new_empty((batch, k0.shape[0], capacity, k0.shape[2]))
            values = v0.new_empty((batch, v0.shape[0], capacity, v0.shape[2]))
            layer = len(cache.layers)
            for b, kv in enumerate(cached):
                pad = width_c - cached_len[b]
                if pad:
                    keys[b, :, :pad] = 0
                    values[b, :, :pad] = 0
                if kv:
                    write_kv(kv, layer, keys[b, :, pad:width_c], values[b, :, pad:width_c])
            grown = GrowingLayer()
            grown.adopt(keys, values, width_c)
            cache.layers.append(grown)
    return input_ids, mask, positions, cache


def forward_cached(
    model: object,
    cached: list[KV | KVPath | None],
    suffixes: list[list[int]],
    pad_id: int,
    use_cache: bool,
    headroom: int = 0,
) -> tuple[object, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass of `model` over assembled [cached prefix][suffix] rows: the model output,
    the suffix input ids (left-padded), the attention mask over prefix + suffix and the suffix
    positions."""
    input_ids, mask, positions, past = assemble(cached, suffixes, pad_id, headroom)
    out = model(  # type: ignore[operator]
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=past,
        use_cache=use_cache,
    )
    return out, input_ids, mask, positions


def encode_into_cache(
    model: object, prefix_cache: PrefixKVCache, keys: list[list[int]], pad_id: int
) -> int:
    """Encode token sequences (shared prompts) in one pass and cache their KV states with an
    empty payload; returns the tokens computed."""
    if not keys:
        return 0
    out, _, mask, _ = forward_cached(model, [None] * len(keys), keys, pad_id, True)
    for b, key in enumerate(keys):
        prefix_cache.put(tuple(key), extract(out.past_key_values, b, mask[b]), [])  # type: ignore[attr-defined]
    return sum(len(key) for key in keys)


def extract(cache: object, row: int, mask_row: torch.Tensor) -> KV:
    """The KV states of one batch row's real (unmasked) tokens, detached copies (indexing by a
    tensor of positions copies)."""
    idx = mask_row.nonzero(as_tuple=True)[0]
    return [
        (layer.keys[row][:, idx], layer.values[row][:, idx])
        for layer in cache.layers  # type: ignore[attr-defined]
    ]


def extract_tail(
    cache: object, row: int, mask_row: torch.Tensor, width_c: int, prefix: KV | KVPath | None
) -> KVPath:
    """One batch row's KV as a path: the cached prefix it was assembled from (`prefix`, its
    own storage), then views of the row's columns past the prefix block (`width_c` wide) up to
    the end, which must all be real tokens (a left-padded suffix and the tokens decoded after
    it). The same bits as `extract`, without copying the prefix: caches copy what they keep."""
    tail = int(mask_row[width_c:].sum())
    start = mask_row.shape[0] - tail
    if not bool(mask_row[start:].all()):
        raise ValueError("the row's tokens past its prefix are not contiguous")
    layers = cache.layers  # type: ignore[attr-defined]
    own = [(layer.keys[row][:, start:], layer.values[row][:, start:]) for layer in layers]
    if isinstance(prefix, KVPath):
        return KVPath([*prefix.segments, own])
    return KVPath([prefix, own] if prefix else [own])

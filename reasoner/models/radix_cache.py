"""A tree-shaped prefix KV cache: a radix tree over token ids whose nodes hold only their own KV.

PrefixKVCache keeps each entry's whole chain, so siblings duplicate their parent's KV; here a
node stores the KV of its own tokens and links to its parent (as SGLang's RadixAttention), and a
lookup gathers the path root -> node (kv_reuse.KVPath; the batch assembly copies it into the
padded prefix of one batched attention). Eviction is leaf-first LRU under a byte budget.

Exactness: a lookup returns bit for bit the KV that was put for that key. A new chain shares a
node only where both its tokens and its KV bits equal the node's (the KV of the same tokens can
differ in the last bits when computed in another batch layout), otherwise it gets a sibling that
starts with the same tokens. So for the same puts and gets, the samples and scores are exactly
those of PrefixKVCache; only what is evicted (less here, at the same budget) differs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from itertools import count

import torch

from reasoner.models.kv_reuse import KV, KVPath, PrefixKVCache
from reasoner.types import ReasonerError

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """`t` reinterpreted as integers of its element size (so -0.0 != 0.0 and NaN == NaN)."""
    return t.view(_INT_OF_SIZE[t.element_size()])


def stack(kv: KV) -> torch.Tensor:
    """One tensor (layers, 2, heads, T, dim) holding every layer's keys and values."""
    return torch.stack([torch.stack(pair) for pair in kv])


def unstack(data: torch.Tensor) -> KV:
    """The per-layer (keys, values) views of a stacked tensor."""
    return [(layer[0], layer[1]) for layer in data]


def _token_bytes(path: KVPath) -> int:
    """Bytes of one position's keys and values in every layer of a path's KV."""
    seg = next((s for s in path.segments if s), None)
    if seg is None:
        return 0
    return sum(k.shape[0] * k.shape[2] * k.element_size() * 2 for k, _ in seg)


def equal_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many positions, from the first, two stacked KV tensors of one length agree on bit for
    bit (every layer's keys and values)."""
    n = a.shape[3]
    if n == 0 or torch.equal(_bits(a), _bits(b)):
        return n  # the common case: a chain extending the node it was computed from
    same = (_bits(a) == _bits(b)).transpose(3, 0).reshape(n, -1).all(-1)
    return int((~same).nonzero()[0, 0])


class _Node:
    """Tokens [start, start + len(tokens)) of the sequences below it, their KV and its links."""

    __slots__ = ("parent", "start", "tokens", "_data", "kv", "children", "keys", "last", "uid")

    def __init__(
        self,
        parent: _Node | None,
        start: int,
        tokens: tuple[int, ...],
        data: torch.Tensor,
        uid: int,
    ):
        self.parent = parent
        self.start = start
        self.tokens = tokens
        self.data = data  # (layers, 2, heads, len(tokens), dim), its own storage
        # first token -> children starting with it (several when their KV bits differ)
        self.children: dict[int, list[_Node]] = {}
        self.keys: set[tuple[int, ...]] = set()  # entries whose KV ends at this node's end
        self.last = 0
        self.uid = uid

    @property
    def data(self) -> torch.Tensor:
        return self._data

    @data.setter
    def data(self, data: torch.Tensor) -> None:
        self._data = data
        self.kv = unstack(data) if data.dim() == 5 else []  # per-layer views, made once

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def path(self) -> list[KV]:
        """The KV segments from the root down to this node."""
        segments: list[KV] = []
        node: _Node | None = self
        while node is not None and node.tokens:
            segments.append(node.kv)
            node = node.parent
        return segments[::-1]


class RadixKVCache:
    """PrefixKVCache's interface (get, get_entry, put, clear, hits, misses) over a radix tree of
    KV segments, bounded by bytes, evicted leaf first, least recently used first."""

    COPIES_ON_PUT = True  # put stores its own copies: callers may pass views of a larger KV

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._uid = count()
        self._clock = count(1)
        self.clear()

    # ---- the PrefixKVCache interface -------------------------------------------------------------
    def get(self, key: tuple[int, ...]) -> KVPath | None:
        """The KV states cached for exactly `key`, or None (counts a hit or a miss)."""
        entry = self.get_entry(key)
        return entry[0] if entry else None

    def get_entry(self, key: tuple[int, ...]) -> tuple[KVPath, object] | None:
        """(KV states, payload) cached for exactly `key`, or None; a hit becomes most recent."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        node, payload = entry
        self._touch(node)
        return KVPath(node.path(), node), payload

    def put(
        self,
        key: tuple[int, ...],
        kv: KV | KVPath,
        payload: object = None,
        base: KVPath | None = None,
    ) -> None:
        """Cache `kv` (the KV of key's first kv_length(kv) tokens) and `payload` for `key` unless
        present or larger than the budget; then evict least recently used leaves past max_bytes.

        `base`: a KVPath this cache returned whose positions were copied into kv's first ones
        (the cached prefix the chain was computed from); its node, if still held, holds exactly
        those bits, so only the positions past it are compared and stored."""
        if self.max_bytes <= 0 or key in self._entries:
            return
        path = kv if isinstance(kv, KVPath) else KVPath([kv])
        n = len(path)
        if n > len(key):
            raise ValueError(f"KV of {n} tokens for a key of {len(key)}")
        if n * _token_bytes(path) > self.max_bytes:
            return
        start, pos = self._root, 0
        if (
            isinstance(base, KVPath)
            and isinstance(base.node, _Node)
            and base.node.parent is not None
        ):
            held = base.node
            if held.end <= n and tuple(key[held.start : held.end]) == held.tokens:
                start, pos = held, held.end
        rest = path.window(pos, n)
        node = self._insert(key[:n], stack(rest) if rest else torch.zeros(0), start, pos)
        node.keys.add(key)
        self._entries[key] = (node, payload)
        self._touch(node)
        self._evict()

    def clear(self) -> None:
        """Forget every entry (hit and miss counts stay)."""
        self._root = _Node(None, 0, (), torch.zeros(0), next(self._uid))
        self._entries: dict[tuple[int, ...], tuple[_Node, object]] = {}
        self._bytes = 0
        self._nodes = 0
        self._heap: list[tuple[int, int, _Node]] = []

    def __len__(self) -> int:
        return len(self._entries)

    # ---- what it holds (for benchmarks and tests) --------------------------------------------------
    @property
    def bytes(self) -> int:
        """Bytes of KV held."""
        return self._bytes

    @property
    def nodes(self) -> int:
        return self._nodes

    def stored_tokens(self) -> int:
        """Token positions whose KV is held (distinct tokens, plus siblings whose bits differ)."""
        return sum(len(node.tokens) for node in self._walk())

    def stored_sequences(self) -> Iterator[tuple[int, ...]]:
        """The token sequence whose KV each entry holds."""
        for node, _ in self._entries.values():
            yield self._tokens_of(node)

    # ---- the tree --------------------------------------------------------------------------------
    def _walk(self) -> Iterator[_Node]:
        stack = [c for cs in self._root.children.values() for c in cs]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(c for cs in node.children.values() for c in cs)

    @staticmethod
    def _tokens_of(node: _Node) -> tuple[int, ...]:
        parts = []
        at: _Node | None = node
        while at is not None:
            parts.append(at.tokens)
            at = at.parent
        return tuple(t for part in reversed(parts) for t in part)

    def _new(self, parent: _Node, start: int, tokens: tuple[int, ...], data: torch.Tensor) -> _Node:
        node = _Node(parent, start, tokens, data, next(self._uid))
        parent.children.setdefault(tokens[0], []).append(node)
        self._bytes += node.nbytes
        self._nodes += 1
        return node

    def _insert(self, tokens: Sequence[int], data: torch.Tensor, node: _Node, pos: int) -> _Node:
        """The node whose path spells `tokens` with exactly the bits of the stacked KV `data` of
        tokens[pos:], below `node` (which spells tokens[:pos]): every node matching both is
        shared, one is added for the rest."""
        at, n = pos, len(tokens)  # data's column c holds position at + c
        while pos < n:
            best, matched = None, 0
            for child in node.children.get(tokens[pos], []):
                same = 0
                limit = min(len(child.tokens), n - pos)
                while same < limit and child.tokens[same] == tokens[pos + same]:
                    same += 1
                same = equal_prefix(
                    child.data[:, :, :, :same], data[:, :, :, pos - at : pos - at + same]
                )
                if same > matched:
                    best, matched = child, same
            if best is None:
                return self._new(
                    node,
                    pos,
                    tuple(tokens[pos:]),
                    data[:, :, :, pos - at :].clone(memory_format=torch.contiguous_format),
                )
            if matched < len(best.tokens):
                best = self._split(best, matched)
            node, pos = best, pos + matched
        return node

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut `node` after its first `at` tokens; returns the new upper node (the lower keeps its
        entries and children)."""
        parent = node.parent
        assert parent is not None
        upper = _Node(
            parent,
            node.start,
            node.tokens[:at],
            node.data[:, :, :, :at].clone(memory_format=torch.contiguous_format),
            next(self._uid),
        )
        siblings = parent.children[node.tokens[0]]
        siblings[siblings.index(node)] = upper
        old = node.nbytes
        node.tokens, node.start = node.tokens[at:], node.start + at
        node.data = node.data[:, :, :, at:].clone(memory_format=torch.contiguous_format)
        node.parent = upper
        upper.children[node.tokens[0]] = [node]
        upper.last = node.last
        self._bytes += upper.nbytes + node.nbytes - old
        self._nodes += 1
        return upper

    def _touch(self, node: _Node) -> None:
        """Mark `node` and its ancestors used now; a leaf enters the eviction heap."""
        now = next(self._clock)
        at: _Node | None = node
        while at is not None and at.tokens:
            at.last = now
            at = at.parent
        if not node.children:
            heapq.heappush(self._heap, (now, node.uid, node))

    def _evict(self) -> None:
        """Drop least recently used leaves (and their entries) until within max_bytes."""
        while self._bytes > self.max_bytes and self._heap:
            last, _, node = heapq.heappop(self._heap)
            if node.children or node.last != last or node.parent is None:
                continue  # stale: used since, no longer a leaf, or already dropped
            self._drop(node)
        if len(self._heap) > 4 * self._nodes + 64:  # forget stale heap items now and then
            self._heap = [h for h in self._heap if h[2].parent is not None and h[2].last == h[0]]
            heapq.heapify(self._heap)

    def _drop(self, node: _Node) -> None:
        parent = node.parent
        assert parent is not None
        siblings = parent.children[node.tokens[0]]
        siblings.remove(node)
        if not siblings:
            del parent.children[node.tokens[0]]
        for key in node.keys:
            del self._entries[key]
        self._bytes -= node.nbytes
        self._nodes -= 1
        node.parent = None
        if parent.tokens and not parent.children:
            if parent.keys:  # a leaf now: evictable in its own LRU turn
                heapq.heappush(self._heap, (parent.last, parent.uid, parent))
            else:  # nothing ends there: no entry can reach it
                self._drop(parent)


KV_CACHE_KINDS = ("radix", "flat")


def make_prefix_cache(kind: str, mb: int) -> RadixKVCache | PrefixKVCache | None:
    """The prefix cache an HF backend keeps: "radix" (a tree of segments, the default) or "flat"
    (PrefixKVCache: each entry its whole chain); None when mb <= 0 (nothing is reused)."""
    if kind not in KV_CACHE_KINDS:
        raise ReasonerError(f"kv_cache must be one of {list(KV_CACHE_KINDS)}, got {kind!r}")
    if mb <= 0:
        return None
    return RadixKVCache(mb * 2**20) if kind == "radix" else PrefixKVCache(mb * 2**20)

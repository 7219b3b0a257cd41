"""The prefix planner the HF PRMs share: which cached prefix a chain reuses, and what it caches.

A PRM scores chains that extend chains it has scored (a child of a scored node) or that start
with a prompt other chains of the same call share (the N samples of best-of-N). The planner
looks up, among a chain's candidate cut points (longest first), the first prefix whose KV states
(and values: step scores, feature rows) are cached; encodes once a prompt several fresh chains
share; and stores the prefixes of a just-encoded chain that later chains may extend. Each model
says where its cut points are (HFPRM: step tags; the evidence PRM: step spans); the cache lookups
happen in the order the model asks for them, which keeps the LRU order (and so what is evicted)
a pure function of the calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasoner.models.kv_reuse import KV, KVPath, PrefixKVCache, encode_into_cache
from reasoner.models.radix_cache import RadixKVCache


@dataclass
class Plan:
    """What a chain reuses: the KV states of its first `cut` tokens and the values known for them."""

    cut: int = 0
    kv: KV | KVPath | None = None
    known: list = field(default_factory=list)


class PrefixPlanner:
    """Cached-prefix lookups and stores over one PrefixKVCache (None: nothing is reused)."""

    def __init__(self, cache: PrefixKVCache | RadixKVCache | None):
        self.cache = cache

    def plan(self, ids: Sequence[int], cuts: Iterable[tuple[int, bool]]) -> Plan:
        """The first cut (length, whether its cached values are reused) whose prefix of `ids` is
        cached; nothing when none is."""
        if self.cache is None:
            return Plan()
        for cut, with_values in cuts:
            entry = self.cache.get_entry(tuple(ids[:cut]))
            if entry is not None:
                known = list(entry[1]) if with_values else []  # type: ignore[arg-type]
                return Plan(cut, entry[0], known)
        return Plan()

    def shared(
        self, prompts: Iterable[tuple[int, ...] | None], skip_cached: bool = False
    ) -> list[list[int]]:
        """The prompts (None: the chain has none to share) that two or more chains start with, in
        first-seen order; `skip_cached` also leaves out those already cached."""
        if self.cache is None:
            return []
        waiting: dict[tuple[int, ...], int] = {}
        for key in prompts:
            if key is not None:
                waiting[key] = waiting.get(key, 0) + 1
        return [
            list(key)
            for key, count in waiting.items()
            if count >= 2 and not (skip_cached and self.cache.get_entry(key) is not None)
        ]

    def encode(self, model: Any, prompts: list[list[int]], pad_id: int) -> int:
        """Encode `prompts` in one pass and cache their KV states; the tokens computed."""
        if self.cache is None:
            return 0
        return encode_into_cache(model, self.cache, prompts, pad_id)

    def store(
        self,
        ids: Sequence[int],
        kv: KV | KVPath,
        keeps: Iterable[tuple[int, object]],
        base: KV | KVPath | None = None,
    ) -> None:
        """Cache prefixes of a chain whose KV states (all of `ids`) were just computed: each
        (length, values) in order; the whole chain as it is, a shorter prefix as its own copy
        (a view when the cache copies what it keeps, as a radix cache or any KVPath does);
        `base`: the planned prefix the chain was computed from (plan.kv)."""
        hint = base if isinstance(base, KVPath) else None
        if self.cache is None:
            return
        for keep, values in keeps:
            if keep == len(ids):
                part = kv
            elif isinstance(kv, KVPath):  # views; the cache copies what it keeps
                part = kv.prefix(keep)
            elif self.cache.COPIES_ON_PUT:
                part = [(k[:, :keep], v[:, :keep]) for k, v in kv]
            else:
                part = [(k[:, :keep].clone(), v[:, :keep].clone()) for k, v in kv]
            usable = hint is not None and len(hint) <= keep
            self.cache.put(tuple(ids[:keep]), part, values, hint if usable else None)

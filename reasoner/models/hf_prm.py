"""HF transformers PRM backend: a causal LM read at step-tag positions, one forward per chain.

The adapter is data, not a class per model: the StepFormat says which tag follows each step and
which two label tokens are compared; step score = sigmoid(z[+] - z[-]) at each tag position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.models.kv_reuse import PrefixKVCache, extract, forward_cached
from reasoner.models.prefix_plan import Plan, PrefixPlanner
from reasoner.models.resolve import load_hf_lm
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError


def single_token_id(tokenizer: Any, text: str, what: str) -> int:
    """The id of `text` if the tokenizer holds it as exactly one token, else a clear error."""
    tid = tokenizer.convert_tokens_to_ids(text)
    if (
        tid is not None
        and tid != tokenizer.unk_token_id
        and tokenizer.convert_ids_to_tokens(tid) == text
    ):
        return int(tid)
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    raise ReasonerError(
        f"PRM {what} {text!r} is not a single token for this tokenizer (got ids {ids})"
    )


# a new token's cost in the linear layers, in units of attending to one key (the cost model that
# groups chains into batches; only its rough size matters)
LINEAR_COST_IN_KEYS = 64


class PRMInputBuilder:
    """Builds PRM token ids and tag positions from (problem, steps), piece by piece.

    Used by both PRM training and PRM scoring, so tags land on the same tokens in both. Each text
    piece is tokenized on its own and the tag is inserted as its id, never re-tokenized from text.
    """

    def __init__(self, tokenizer: Any, step_format: StepFormat, max_length: int | None = None):
        self.tokenizer = tokenizer
        self.step_format = step_format
        self.max_length = max_length
        self.tag_id = single_token_id(tokenizer, step_format.step_tag, "step tag")
        self.pos_id = single_token_id(tokenizer, step_format.positive_token, "positive label token")
        self.neg_id = single_token_id(tokenizer, step_format.negative_token, "negative label token")
        self._cache: dict[str, list[int]] = {}

    def _encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if len(self._cache) < 100_000:
                self._cache[text] = ids
        return ids

    def build(self, problem: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """PRM input ids of (problem, steps) and the position of each step's tag."""
        ids: list[int] = []
        bos = self.tokenizer.bos_token_id
        if bos is not None:
            ids.append(bos)
        tags: list[int] = []
        for text, is_tag in self.step_format.prm_segments(problem, steps):
            if is_tag:
                tags.append(len(ids))
                ids.append(self.tag_id)
            else:
                ids.extend(self._encode(text))
        if self.max_length and len(ids) > self.max_length:
            # keep the tail: the latest steps matter most; tags cut off are scored from the tail only
            cut = len(ids) - self.max_length
            ids = ids[cut:]
            tags = [t - cut for t in tags]
            if any(t < 0 for t in tags):
                raise ReasonerError(
                    f"PRM input of {len(ids) + cut} tokens exceeds max_length {self.max_length}"
                )
        return ids, tags


class HFPRM:
    """A local HF causal-LM PRM (our ER-PRMs, Math-Shepherd-style PRMs)."""

    max_chains_per_call = DEFAULT_CHAINS_PER_CALL  # chains per score call (the controller's)

    def __init__(
        self,
        model: str | Path = "embedded-lm",
        step_format: StepFormat | str | dict | None = None,
        dtype: str = "float32",
        max_batch_tokens: int = 16384,
        max_padding: float = 1.25,
        trust_remote_code: bool = False,
        threads: int | None = None,
        prefix_cache_mb: int = 1024,
    ):
        lm = load_hf_lm(model, "lm-prm", step_format, dtype, trust_remote_code, threads)
        self.path = lm.path
        self.step_format = lm.step_format
        self.tokenizer = lm.tokenizer
        self.model = lm.model
        self.pad_id = lm.pad_id
        self.num_parameters = lm.num_parameters
        self.max_context = lm.max_context
        self.builder = PRMInputBuilder(self.tokenizer, self.step_format, self.max_context)
        self.max_batch_tokens = max_batch_tokens
        self.max_padding = max_padding
        self.prefix_cache = PrefixKVCache(prefix_cache_mb * 2**20) if prefix_cache_mb > 0 else None
        self.planner = PrefixPlanner(self.prefix_cache)

    def clear_cache(self) -> None:
        """Forget cached prefix encodings, so a search's cost does not depend on earlier ones."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    @torch.no_grad()
    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores for every chain (one forward pass per chain, chains batched by length).

        A chain extending an already scored chain (a child of a scored node) reuses that chain's
        KV states and step scores and only encodes its new step: tokens computed are returned.
        """
        built = [self.builder.build(r.problem, r.steps) for r in requests]
        heads = [self._head(r.problem, ids) for r, (ids, _) in zip(requests, built)]
        tokens = self._encode_shared_heads(built, heads)
        plans = [self._plan(ids, tags, head) for (ids, tags), head in zip(built, heads)]
        scores: list[list[float]] = [[] for _ in built]
        for batch in self._batches(built, plans):
            for i, values in zip(
                batch, self._score_batch([built[i] for i in batch], [plans[i] for i in batch])
            ):
                scores[i] = values
            tokens += sum(len(built[i][0]) - plans[i].cut for i in batch)
        return scores, tokens

    def _batches(self, built: list, plans: list) -> list[list[int]]:
        """Chains grouped into forward passes that waste little on padding.

        A row costs its new tokens times (a per-token constant for the linear layers + the keys it
        attends to); a batch pads every row to its widest cache and longest suffix. Chains are
        sorted by (new length, cached length) and a batch closes when padding would raise its
        cost past `max_padding` x the rows' own cost, or its area past max_batch_tokens. On a CPU
        a big padded batch is slower than several snug ones (measured in perf_search).
        """
        sizes = [(len(ids) - plan.cut, plan.cut) for (ids, _), plan in zip(built, plans)]
        order = sorted(range(len(built)), key=lambda i: sizes[i])
        batches: list[list[int]] = []
        current: list[int] = []
        widest = longest = 0
        own = 0.0
        for i in order:
            new, cached = sizes[i]
            w, n = max(widest, cached), max(longest, new)
            o = own + new * (LINEAR_COST_IN_KEYS + cached + new)
            padded = (len(current) + 1) * n * (LINEAR_COST_IN_KEYS + w + n)
            area = (len(current) + 1) * (w + n)
            if current and (padded > self.max_padding * o or area > self.max_batch_tokens):
                batches.append(current)
                current, w, n, o = [], cached, new, new * (LINEAR_COST_IN_KEYS + cached + new)
            current.append(i)
            widest, longest, own = w, n, o
        if current:
            batches.append(current)
        return batches

    def _head(self, problem: str, ids: list[int]) -> int:
        """Length of the problem part of a chain's ids (0 if the chain was cut to max_length)."""
        head = self.builder.build(problem, [])[0]
        return len(head) if ids[: len(head)] == head and len(head) < len(ids) else 0

    def _encode_shared_heads(self, built: list, heads: list[int]) -> int:
        """Encode once, and cache, a problem prefix that several unscored chains start with.

        First-step candidates have no scored parent chain; without this each would re-encode the
        whole problem. Returns the tokens computed.
        """
        if self.prefix_cache is None:
            return 0
        fresh = [
            tuple(ids[:head]) if head and self._plan(ids, tags, 0).cut == 0 else None
            for (ids, tags), head in zip(built, heads)
        ]
        shared = self.planner.shared(fresh, skip_cached=True)
        return self.planner.encode(self.model, shared, self.pad_id)

    def _plan(self, ids: list[int], tags: list[int], head: int) -> Plan:
        """The longest scored parent chain (its KV and step scores), else the chain's encoded
        problem prefix, else nothing."""
        cuts = [(tags[-2] + 1, True)] if len(tags) >= 2 else []
        if head:
            cuts.append((head, False))
        return self.planner.plan(ids, cuts)

    def _score_batch(
        self, batch: list[tuple[list[int], list[int]]], plans: list[Plan]
    ) -> list[list[float]]:
        suffixes = [ids[plan.cut :] for (ids, _), plan in zip(batch, plans)]
        out, input_ids, mask, _ = forward_cached(
            self.model, [p.kv for p in plans], suffixes, self.pad_id, self.prefix_cache is not None
        )
        logits = out.logits
        width = input_ids.shape[1]
        results = []
        for b, ((ids, tags), plan) in enumerate(zip(batch, plans)):
            cut = plan.cut
            offset = width - len(suffixes[b]) - cut  # block column of sequence position cut
            new_tags = [t for t in tags if t >= cut]
            values = list(plan.known)
            if new_tags:
                cols = [t + offset for t in new_tags]
                z = logits[b, cols][:, [self.builder.pos_id, self.builder.neg_id]].float()
                values += torch.sigmoid(z[:, 0] - z[:, 1]).tolist()
            if self.prefix_cache is not None and tags:
                # the chain, and (a chain scored several new steps at once: a rollout) each inner
                # step's prefix, since a search may later branch from any of them
                keeps = [(len(ids), values)] + [
                    (t + 1, values[: j + 1]) for j, t in enumerate(tags[:-1]) if t >= cut
                ]
                self.planner.store(ids, extract(out.past_key_values, b, mask[b]), keeps)
            results.append(values)
        return results

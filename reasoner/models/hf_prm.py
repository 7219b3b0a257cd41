"""HF transformers PRM backend: a causal LM read at step-tag positions, one forward per chain.

The adapter is data, not a class per model: the StepFormat says which tag follows each step and
which two label tokens are compared; step score = sigmoid(z[+] - z[-]) at each tag position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reasoner.models.base import ScoreRequest
from reasoner.models.resolve import (
    load_causal_lm,
    load_step_format,
    load_tokenizer,
    resolve_model_path,
)
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

    def __init__(
        self,
        model: str | Path = "embedded",
        step_format: StepFormat | str | dict | None = None,
        dtype: str = "float32",
        max_batch_tokens: int = 16384,
        trust_remote_code: bool = False,
        threads: int | None = None,
    ):
        if threads:
            torch.set_num_threads(threads)
        self.path = resolve_model_path(model, "prm")
        self.step_format = load_step_format(self.path, step_format)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code)
        self.model = load_causal_lm(self.path, dtype, trust_remote_code)
        self.num_parameters = sum(p.numel() for p in self.model.parameters())
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.builder = PRMInputBuilder(self.tokenizer, self.step_format, self.max_context)
        self.max_batch_tokens = max_batch_tokens

    @torch.no_grad()
    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores for every chain (one forward pass per chain, chains batched by length)."""
        built = [self.builder.build(r.problem, r.steps) for r in requests]
        order = sorted(range(len(built)), key=lambda i: len(built[i][0]))
        scores: list[list[float]] = [[] for _ in built]
        tokens = 0
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and len(built[order[end]][0]) * (end - start + 1) <= self.max_batch_tokens
            ):
                end += 1
            batch = order[start:end]
            for i, values in zip(batch, self._score_batch([built[i] for i in batch])):
                scores[i] = values
            tokens += sum(len(built[i][0]) for i in batch)
            start = end
        return scores, tokens

    def _score_batch(self, batch: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        width = max(len(ids) for ids, _ in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (ids, _) in enumerate(batch):  # right padding: tag positions stay as built
            input_ids[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attn[b, : len(ids)] = 1
        logits = self.model(input_ids=input_ids, attention_mask=attn).logits
        out = []
        for b, (_, tags) in enumerate(batch):
            if not tags:
                out.append([])
                continue
            z = logits[b, tags][:, [self.builder.pos_id, self.builder.neg_id]].float()
            out.append(torch.sigmoid(z[:, 0] - z[:, 1]).tolist())
        return out

"""HF transformers policy backend: batched step sampling with a shared prefill per prefix.

All requests of one call are prefilled together (left-padded), each prefix once; its KV cache is
then repeated for its k samples, so k samples never re-encode the prefix. Decoding runs until every
row has hit the step delimiter, end-of-sequence or a cap; finished rows are dropped from the batch.
Sampling noise is counter-based (reasoner.models.sampling): a pure function of (request seed,
sample index, token index), so a row's sample does not depend on what else shares the batch, and
the whole batch is sampled in one vectorized call per decoding step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reasoner.models.base import Continuation, GenRequest, StepPiece
from reasoner.models.kv_reuse import PrefixKVCache, extract, forward_cached
from reasoner.models.resolve import (
    load_causal_lm,
    load_step_format,
    load_tokenizer,
    resolve_model_path,
)
from reasoner.models.sampling import row_key, sample_tokens
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError


class HFPolicy:
    """A local HF causal LM that proposes steps."""

    def __init__(
        self,
        model: str | Path = "embedded",
        step_format: StepFormat | str | dict | None = None,
        dtype: str = "float32",
        top_p: float = 1.0,
        max_batch_rows: int = 128,
        trust_remote_code: bool = False,
        gguf_file: str | None = None,
        threads: int | None = None,
        prefix_cache_mb: int = 512,
    ):
        if threads:
            torch.set_num_threads(threads)
        self.path = resolve_model_path(model, "policy")
        self.step_format = load_step_format(self.path, step_format)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code, gguf_file)
        self.model = load_causal_lm(self.path, dtype, trust_remote_code, gguf_file)
        self.num_parameters = sum(p.numel() for p in self.model.parameters())
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.top_p = top_p
        self.max_batch_rows = max_batch_rows
        self.prefix_cache = PrefixKVCache(prefix_cache_mb * 2**20) if prefix_cache_mb > 0 else None
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = eos_ids
        self.pad_id = self.tokenizer.pad_token_id
        # tokens whose text contains the delimiter's last character: only these can end a step
        last = self.step_format.delimiter[-1]
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        self._maybe_delim = {
            i
            for i, tok in enumerate(vocab)
            if tok is not None and last in self.tokenizer.convert_tokens_to_string([tok])
        }

    # ------------------------------------------------------------------------------------------
    def encode_prompt(self, problem_text: str) -> list[int]:
        """Prompt ids (chat template or plain template, with BOS when the model uses one)."""
        return self.step_format.encode_prompt(problem_text, self.tokenizer, self.max_context)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
        """Sample continuations for every request; chunks keep at most max_batch_rows rows.

        Requests are chunked in order of prefix length, so a chunk's rows pad their KV states to
        similar widths (samples do not depend on the chunking: each row has its own noise key).
        """
        results: list[list[Continuation]] = [[] for _ in requests]
        for req in requests:
            if req.k < 1:
                raise ReasonerError(f"GenRequest.k must be >= 1, got {req.k}")
        chunk: list[int] = []
        rows = 0
        for i in sorted(range(len(requests)), key=lambda i: len(requests[i].prefix_ids)):
            req = requests[i]
            if chunk and rows + req.k > self.max_batch_rows:
                self._generate_chunk(requests, chunk, results)
                chunk, rows = [], 0
            chunk.append(i)
            rows += req.k
        if chunk:
            self._generate_chunk(requests, chunk, results)
        return results

    def clear_cache(self) -> None:
        """Forget cached prefix encodings, so a search's cost does not depend on earlier ones."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    @torch.no_grad()
    def _generate_chunk(self, requests: list[GenRequest], idx: list[int], results: list) -> None:
        fmt = self.step_format
        reqs = [requests[i] for i in idx]
        width = max(len(r.prefix_ids) for r in reqs)
        if width >= self.max_context:
            raise ReasonerError(
                f"a prefix of {width} tokens exceeds the policy context {self.max_context}"
            )
        # reuse the KV states of a parent chain when the tree extends it (all but the last token)
        cached = [
            self.prefix_cache.get(tuple(r.prefix_ids)) if self.prefix_cache else None for r in reqs
        ]
        suffixes = [r.prefix_ids[-1:] if kv else r.prefix_ids for r, kv in zip(reqs, cached)]
        out, input_ids, attn, pos = forward_cached(self.model, cached, suffixes, self.pad_id, True)
        cache = out.past_key_values
        rep = torch.tensor([b for b, r in enumerate(reqs) for _ in range(r.k)], dtype=torch.long)
        cache.batch_select_indices(rep)
        logits = out.logits[:, -1, :].float()[rep]
        attn = attn[rep]
        next_pos = pos[rep, -1] + 1

        # per-row state
        rows: list[dict[str, Any]] = []
        for b, r in enumerate(reqs):
            for j in range(r.k):
                max_steps = (r.max_steps or fmt.max_steps) if r.mode == "end" else 1
                cap = min(fmt.max_step_tokens * max_steps, self.max_context - len(r.prefix_ids) - 1)
                rows.append(
                    {
                        "req": b,
                        "key": row_key(r.seed, j),
                        "temp": r.temperature,
                        "mode": r.mode,
                        "max_steps": max_steps,
                        "cap": max(1, cap),
                        "cont": Continuation(prompt_tokens=len(suffixes[b]) if j == 0 else 0),
                        "prefix": r.prefix_ids,
                        "step_ids": [],
                        "step_lp": 0.0,
                        "ended_step": False,
                    }
                )
        # batch position -> row; finished rows stay in the batch (their outputs ignored) until a
        # quarter of it is dead, so the KV cache is compacted a few times instead of per finish
        batch = list(range(len(rows)))
        live = [True] * len(batch)
        keys = torch.tensor([row["key"] for row in rows], dtype=torch.int64)
        temps = torch.tensor([float(row["temp"]) for row in rows], dtype=torch.float32)
        while True:
            at = torch.tensor(batch, dtype=torch.long)
            counters = torch.tensor([rows[a]["cont"].new_tokens for a in batch], dtype=torch.int64)
            chosen, picked = sample_tokens(logits, temps[at], keys[at], counters, self.top_p)
            tokens, logprobs = chosen.tolist(), picked.tolist()
            for p, a in enumerate(batch):
                if not live[p]:
                    continue
                row = rows[a]
                if self._advance(row, tokens[p], logprobs[p]):
                    continue
                live[p] = False
                if self.prefix_cache is not None and row["mode"] == "step" and row["ended_step"]:
                    # the new child will be expanded from here: keep its KV (all but the last token)
                    seq = row["prefix"] + [
                        t for piece in row["cont"].steps for t in piece.token_ids
                    ]
                    self.prefix_cache.put(tuple(seq), extract(cache, p, attn[p]))
            n_live = sum(live)
            if n_live == 0:
                break
            tokens_t = chosen
            if n_live <= 0.75 * len(batch):
                keep = [p for p, alive in enumerate(live) if alive]
                sel = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(sel)
                attn, next_pos, tokens_t = attn[sel], next_pos[sel], chosen[sel]
                batch = [batch[p] for p in keep]
                live = [True] * len(batch)
            attn = torch.cat([attn, torch.ones((len(batch), 1), dtype=torch.long)], dim=1)
            out = self.model(
                input_ids=tokens_t[:, None],
                attention_mask=attn,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        for row in rows:
            results[idx[row["req"]]].append(row["cont"])

    def _advance(self, row: dict, tok: int, lp: float) -> bool:
        """Append a token to a row; close steps at the delimiter; return False once the row is done."""
        cont: Continuation = row["cont"]
        cont.new_tokens += 1
        row["step_ids"].append(tok)
        row["step_lp"] += lp
        if tok in self.eos_ids:
            self._close_step(row, truncated=False)
            cont.finished = True
            return False
        ended = False
        if tok in self._maybe_delim:
            text = self.tokenizer.decode(row["step_ids"], skip_special_tokens=True)
            ended = self.step_format.delimiter in text
        if ended and self._close_step(row, truncated=False):
            row["ended_step"] = True
            return len(cont.steps) < row["max_steps"] and cont.new_tokens < row["cap"]
        if (
            len(row["step_ids"]) >= self.step_format.max_step_tokens
            or cont.new_tokens >= row["cap"]
        ):
            self._close_step(row, truncated=True)
            cont.truncated = True
            return False
        return True

    def _close_step(self, row: dict, truncated: bool) -> bool:
        """Turn the row's pending ids into a step; False (and keep them pending) if it is empty."""
        ids = row["step_ids"]
        cont: Continuation = row["cont"]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        text = text.split(self.step_format.delimiter)[0].strip()
        ends_with_eos = bool(ids) and ids[-1] in self.eos_ids
        if not text and not truncated:
            if not ends_with_eos:
                return False  # a bare delimiter: keep its ids so the prefix stays exact
            if cont.steps:  # a bare end-of-sequence: it belongs to the previous step
                cont.steps[-1].token_ids.extend(ids)
                cont.steps[-1].logprob += row["step_lp"]
                row["step_ids"], row["step_lp"] = [], 0.0
                return True
        cont.steps.append(
            StepPiece(text=text, token_ids=list(ids), logprob=row["step_lp"], truncated=truncated)
        )
        row["step_ids"], row["step_lp"] = [], 0.0
        return True

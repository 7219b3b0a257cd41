"""HF transformers policy backend: batched step sampling with a shared prefill per prefix.

All requests of one call are prefilled together (left-padded), each prefix once; its KV cache is
then repeated for its k samples, so k samples never re-encode the prefix. Decoding runs until every
row has hit the step delimiter, end-of-sequence or a cap (the shared step rules,
reasoner.models.step_rules); finished rows are dropped from the batch.
Sampling noise is counter-based (reasoner.models.sampling): a pure function of (request seed,
sample index, token index), so a row's sample does not depend on what else shares the batch, and
the whole batch is sampled in one vectorized call per decoding step.
A finished step's KV is kept for the children the tree will expand from it: kv_cache="radix" (the
default, reasoner.models.radix_cache: each node holds only its own tokens) or "flat" (each entry
its whole chain; the same samples, more memory), bounded by prefix_cache_mb.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reasoner.models.base import Continuation, GenRequest
from reasoner.models.kv_reuse import extract_tail, forward_cached
from reasoner.models.radix_cache import make_prefix_cache
from reasoner.models.resolve import load_hf_lm
from reasoner.models.sampling import row_key, sample_tokens
from reasoner.models.step_rules import (
    StepRules,
    StepRulesPolicy,
    check_requests,
    eos_token_ids,
    start_rows,
)
from reasoner.step_format import StepFormat

# positions a step's batch keeps free past its prompts' suffixes before its buffers first grow
DECODE_HEADROOM = 64


class HFPolicy(StepRulesPolicy):
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
        kv_cache: str = "radix",
    ):
        lm = load_hf_lm(model, "policy", step_format, dtype, trust_remote_code, threads, gguf_file)
        self.path = lm.path
        self.tokenizer = lm.tokenizer
        self.model = lm.model
        self.num_parameters = lm.num_parameters
        self.max_context = lm.max_context
        self.top_p = top_p
        self.max_batch_rows = max_batch_rows
        self.prefix_cache = make_prefix_cache(kv_cache, prefix_cache_mb)
        self.eos_ids = eos_token_ids(self.model.generation_config.eos_token_id, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        self.rules = StepRules(self.tokenizer, lm.step_format, self.eos_ids)

    @property
    def max_rows_per_call(self) -> int:
        """Rows the controller puts in one call: one decoding batch (max_batch_rows), so the
        controller's calls are the batches this policy would cut a large call into."""
        return self.max_batch_rows

    # ------------------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
        """Sample continuations for every request; chunks keep at most max_batch_rows rows.

        Requests are chunked in order of prefix length, so a chunk's rows pad their KV states to
        similar widths (samples do not depend on the chunking: each row has its own noise key).
        """
        check_requests(requests, self.max_context)
        results: list[list[Continuation]] = [[] for _ in requests]
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
        reqs = [requests[i] for i in idx]
        # reuse the KV states of a parent chain when the tree extends it (all but the last token)
        cached = [
            self.prefix_cache.get(tuple(r.prefix_ids)) if self.prefix_cache else None for r in reqs
        ]
        suffixes = [r.prefix_ids[-1:] if kv else r.prefix_ids for r, kv in zip(reqs, cached)]
        out, input_ids, attn, pos = forward_cached(
            self.model, cached, suffixes, self.pad_id, True, DECODE_HEADROOM
        )
        width_c = attn.shape[1] - input_ids.shape[1]  # the cached-prefix block
        cache = out.past_key_values
        rep = torch.tensor([b for b, r in enumerate(reqs) for _ in range(r.k)], dtype=torch.long)
        cache.batch_select_indices(rep)
        logits = out.logits[:, -1, :].float()[rep]
        attn = attn[rep]
        next_pos = pos[rep, -1] + 1

        rows = start_rows(reqs, self.step_format, self.max_context)
        for row in rows:
            if row.sample == 0:
                row.cont.prompt_tokens = len(suffixes[row.slot])
        # batch position -> row; finished rows stay in the batch (their outputs ignored) until a
        # quarter of it is dead, so the KV cache is compacted a few times instead of per finish
        batch = list(range(len(rows)))
        live = [True] * len(batch)
        keys = torch.tensor([row_key(r.request.seed, r.sample) for r in rows], dtype=torch.int64)
        temps = torch.tensor([float(row.request.temperature) for row in rows], dtype=torch.float32)
        while True:
            at = torch.tensor(batch, dtype=torch.long)
            counters = torch.tensor([rows[a].cont.new_tokens for a in batch], dtype=torch.int64)
            chosen, picked = sample_tokens(logits, temps[at], keys[at], counters, self.top_p)
            tokens, logprobs = chosen.tolist(), picked.tolist()
            for p, a in enumerate(batch):
                if not live[p]:
                    continue
                row = rows[a]
                if self.rules.advance(row, tokens[p], logprobs[p]):
                    continue
                live[p] = False
                if (
                    self.prefix_cache is not None
                    and row.request.mode == "step"
                    and row.ended_step
                    and not row.step_ids  # (a step marker's ids, past the step, are not cached)
                ):
                    # the new child will be expanded from here: keep its KV (all but the last token)
                    seq = row.request.prefix_ids + row.generated_ids()
                    kv = extract_tail(cache, p, attn[p], width_c, cached[row.slot])
                    self.prefix_cache.put(tuple(seq), kv, None, cached[row.slot])
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
            results[idx[row.slot]].append(row.cont)

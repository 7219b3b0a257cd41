"""HF transformers PRM backend: any PRM family (a PRMFormat) read at its steps, one forward per chain.

The adapter is data, not a class per model: the step format's PRMFormat says how the input is
built (reasoner.models.prm_input) and what is read at each step's readout position: two label
tokens of the LM head (score = sigmoid(z[+] - z[-]), the two-way softmax's p(+)), a
token-classification head (softmax, p(positive class)) or a value head (sigmoid). The model is
loaded strictly by reasoner.models.heads. Scored chains' KV and step scores are kept for their
children (reasoner.models.prefix_plan; kv_cache="radix" by default, or "flat").
"""

from __future__ import annotations

from pathlib import Path

import torch

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.models.heads import check_architecture_fits, load_prm_model
from reasoner.models.kv_reuse import extract_tail, forward_cached
from reasoner.models.prefix_plan import Plan, PrefixPlanner
from reasoner.models.prm_input import (
    PRMInput,
    PRMInputBuilder,
    prm_input_builder,
    single_token_id,
)
from reasoner.models.radix_cache import make_prefix_cache
from reasoner.models.resolve import open_checkpoint
from reasoner.step_format import PRMFormat, StepFormat

__all__ = ["HFPRM", "PRMInputBuilder", "read_scores", "single_token_id"]

# a new token's cost in the linear layers, in units of attending to one key (the cost model that
# groups chains into batches; only its rough size matters)
LINEAR_COST_IN_KEYS = 64


def read_scores(outputs: torch.Tensor, builder: PRMInputBuilder) -> list[float]:
    """Step scores from the model's outputs at the readout positions ([steps, outputs]), by the
    format's readout kind."""
    fmt: PRMFormat = builder.format
    if fmt.readout == "lm-labels":
        z = outputs[:, [builder.pos_id, builder.neg_id]].float()
        return torch.sigmoid(z[:, 0] - z[:, 1]).tolist()
    if fmt.readout == "token-class":
        return outputs.float().softmax(dim=-1)[:, fmt.positive_class].tolist()
    return torch.sigmoid(outputs[:, 0].float()).tolist()


class HFPRM:
    """A local HF PRM of any family: our LM ER-PRMs and the real ones (see reasoner.prm_format)."""

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
        kv_cache: str = "radix",
    ):
        if threads:
            torch.set_num_threads(threads)
        ckpt = open_checkpoint(model, "lm-prm", step_format, trust_remote_code)
        self.path = ckpt.path
        self.step_format = ckpt.step_format
        self.tokenizer = ckpt.tokenizer
        self.pad_id = ckpt.pad_id
        fmt = self.step_format.prm_format
        check_architecture_fits(ckpt.path, ckpt.config, fmt)
        # the ids the format reads, checked against the tokenizer before the model loads
        self.builder = prm_input_builder(self.path, self.tokenizer, self.step_format)
        self.model = load_prm_model(ckpt.path, ckpt.config, fmt, dtype, trust_remote_code)
        self.num_parameters = sum(p.numel() for p in self.model.parameters())
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.builder.max_length = self.max_context
        self.max_batch_tokens = max_batch_tokens
        self.max_padding = max_padding
        self.prefix_cache = make_prefix_cache(kv_cache, prefix_cache_mb)
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
        chains = [self.builder.build_chain(r.problem, r.steps) for r in requests]
        heads = [self._head(c) for c in chains]
        tokens = self._encode_shared_heads(chains, heads)
        plans = [self._plan(c, head) for c, head in zip(chains, heads)]
        scores: list[list[float]] = [[] for _ in chains]
        built = [(c.ids, c.readouts) for c in chains]
        for batch in self._batches(built, plans):
            for i, values in zip(
                batch, self._score_batch([chains[i] for i in batch], [plans[i] for i in batch])
            ):
                scores[i] = values
            tokens += sum(len(chains[i].ids) - plans[i].cut for i in batch)
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

    @staticmethod
    def _head(chain: PRMInput) -> int:
        """Length of the problem part of a chain's ids (0 if unknown, e.g. cut to max_length)."""
        return chain.prompt_len if 0 < chain.prompt_len < len(chain.ids) else 0

    def _encode_shared_heads(self, chains: list[PRMInput], heads: list[int]) -> int:
        """Encode once, and cache, a problem prefix that several unscored chains start with.

        First-step candidates have no scored parent chain; without this each would re-encode the
        whole problem. Returns the tokens computed.
        """
        if self.prefix_cache is None:
            return 0
        fresh = [
            tuple(c.ids[:head]) if head and self._plan(c, 0).cut == 0 else None
            for c, head in zip(chains, heads)
        ]
        shared = self.planner.shared(fresh, skip_cached=True)
        return self.planner.encode(self.model, shared, self.pad_id)

    def _plan(self, chain: PRMInput, head: int) -> Plan:
        """The longest scored parent chain (its KV and step scores), else the chain's encoded
        problem prefix, else nothing."""
        cuts = [(chain.ends[-2], True)] if len(chain.ends) >= 2 else []
        if head:
            cuts.append((head, False))
        return self.planner.plan(chain.ids, cuts)

    def _score_batch(self, batch: list[PRMInput], plans: list[Plan]) -> list[list[float]]:
        suffixes = [c.ids[plan.cut :] for c, plan in zip(batch, plans)]
        out, input_ids, mask, _ = forward_cached(
            self.model, [p.kv for p in plans], suffixes, self.pad_id, self.prefix_cache is not None
        )
        logits = out.logits
        width = input_ids.shape[1]
        width_c = mask.shape[1] - width  # the cached-prefix block
        results = []
        for b, (chain, plan) in enumerate(zip(batch, plans)):
            ids, tags, ends = chain.ids, chain.readouts, chain.ends
            cut = plan.cut
            offset = width - len(suffixes[b]) - cut  # block column of sequence position cut
            new_tags = [t for t in tags if t >= cut]
            values = list(plan.known)
            if new_tags:
                values += read_scores(logits[b, [t + offset for t in new_tags]], self.builder)
            if self.prefix_cache is not None and tags:
                # the chain, and (a chain scored several new steps at once: a rollout) each inner
                # step's prefix, since a search may later branch from any of them; the last
                # step's too when text follows it (a chat turn's end)
                keeps = [(len(ids), values)] + [
                    (ends[j], values[: j + 1]) for j, t in enumerate(tags[:-1]) if t >= cut
                ]
                if ends[-1] < len(ids) and tags[-1] >= cut:
                    keeps.append((ends[-1], values))
                kv = extract_tail(out.past_key_values, b, mask[b], width_c, plan.kv)
                self.planner.store(ids, kv, keeps, plan.kv)
            results.append(values)
        return results

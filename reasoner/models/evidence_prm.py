"""The evidence PRM: a learned step-value head over the policy's own token evidence.

score(step) = sigmoid(head(features of the steps so far)), where the features
(reasoner.models.token_evidence) pool how likely the base causal LM found each token of the step
and how far it fell below its favourite, by role (result digit, other digit, word). The head is a
small MLP trained on rollout labels (ER, soft, hard, ORM) by reasoner.training.evidence_trainer.

Why it exists: a PRM fine-tuned from the 3.4M-parameter policy could not learn to check a step
(benchmarks/results/prm_recipes.md), while the policy's own token probabilities separate a right
step from the same step with a slipped result, and a calculator check of the step's equations
(the "equation" feature group) catches the slips the policy itself favours
(benchmarks/results/er_experiment_evidence/). A checkpoint is a directory holding
evidence_prm.json (base spec, feature names, sizes) and head.safetensors; the base's weights are
not copied ("embedded" means the shipped policy).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.models.kv_reuse import PrefixKVCache, extract_tail, forward_cached
from reasoner.models.prefix_plan import Plan, PrefixPlanner
from reasoner.models.radix_cache import RadixKVCache, make_prefix_cache
from reasoner.models.resolve import (
    load_hf_lm,
    read_json_object,
    resolve_model_path,
    safetensors_shapes,
)
from reasoner.models.token_evidence import FEATURES, TokenRoles, chain_layout, evidence_rows
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError

CONFIG_FILE = "evidence_prm.json"
HEAD_FILE = "head.safetensors"


def is_evidence_prm(path: str | Path) -> bool:
    """True when `path` is an evidence-PRM checkpoint directory."""
    return (Path(path) / CONFIG_FILE).exists()


class EvidenceHead(torch.nn.Module):
    """Standardise the features, then a one-hidden-layer MLP to a step-value logit."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.hidden = torch.nn.Linear(features, hidden)
        self.out = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return self.out(torch.tanh(self.hidden(z)))[..., 0]


def save_evidence_prm(
    directory: str | Path,
    head: EvidenceHead,
    base: str,
    features: list[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write evidence_prm.json and head.safetensors (fp32: the head is a few KB); `features` are
    the names of the head's inputs, in order (a subset of FEATURES)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "kind": "evidence",
        "base": base,
        "features": list(features),
        "hidden": head.hidden.out_features,
        **(extra or {}),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, out / HEAD_FILE)
    return out


def load_evidence_head(directory: Path) -> tuple[EvidenceHead, dict[str, Any], list[int]]:
    """The head, its config and its input columns in a FEATURES row, with clear errors for a
    damaged or mismatched checkpoint (each names the file)."""
    cfg_file, head_file = directory / CONFIG_FILE, directory / HEAD_FILE
    config = read_json_object(cfg_file)
    for key in ("base", "features", "hidden"):
        if key not in config:
            raise ReasonerError(f"{cfg_file}: missing field {key!r}")
    if not isinstance(config["base"], str) or not config["base"]:
        raise ReasonerError(f"{cfg_file}: 'base' must be a checkpoint spec (a string)")
    features = config["features"]
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ReasonerError(f"{cfg_file}: 'features' must be a list of feature names")
    hidden = config["hidden"]
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ReasonerError(f"{cfg_file}: 'hidden' must be an integer >= 1, got {hidden!r}")
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise ReasonerError(
            f"{cfg_file}: trained on features {unknown or '[]'} that this version "
            f"does not compute (it has {list(FEATURES)}); retrain it with `reasoner train-prm`"
        )
    if not head_file.exists():
        raise ReasonerError(f"evidence PRM {directory} has no {HEAD_FILE}")
    safetensors_shapes(head_file)  # a truncated or corrupt file is named before it is read
    head = EvidenceHead(len(features), hidden)
    try:
        head.load_state_dict(load_file(head_file))
    except RuntimeError as err:
        detail = " ".join(str(err).split())  # one line: the CLI prints one
        raise ReasonerError(f"{head_file} does not match {CONFIG_FILE}: {detail}") from err
    head.eval()
    return head, config, [FEATURES.index(f) for f in features]


class EvidenceFeatures:
    """FEATURES rows for every step of (problem, steps) chains, from one base-LM forward each.

    A chain extending an already encoded chain (a child in a search tree) reuses its parent's KV
    states and rows: only the delimiter and the new step are encoded. Fresh chains reuse a cached
    prompt (without its last token, whose logits predict the first step's first token). Used by
    the evidence PRM and its trainer alike.
    """

    def __init__(
        self,
        base: str | Path,
        step_format: StepFormat | str | dict | None = None,
        dtype: str = "float32",
        max_batch_tokens: int = 16384,
        trust_remote_code: bool = False,
        prefix_cache_mb: int = 1024,
        threads: int | None = None,
        kv_cache: str = "radix",
    ):
        lm = load_hf_lm(base, "policy", step_format, dtype, trust_remote_code, threads)
        self.step_format = lm.step_format
        self.tokenizer = lm.tokenizer
        self.model = lm.model
        self.pad_id = lm.pad_id
        self.roles = TokenRoles(self.tokenizer)
        self.max_context = lm.max_context
        self.max_batch_tokens = max_batch_tokens
        self.prefix_cache = make_prefix_cache(kv_cache, prefix_cache_mb)
        self.planner = PrefixPlanner(self.prefix_cache)
        # a search scores a chain's steps again with every child: their ids are remembered
        self._piece_ids = lru_cache(maxsize=1 << 16)(self._encode_piece)
        self._prompt_ids = lru_cache(maxsize=1 << 12)(self._encode_prompt)

    def _encode_piece(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def _encode_prompt(self, problem: str) -> tuple[int, ...]:
        return tuple(self.step_format.encode_prompt(problem, self.tokenizer, self.max_context))

    def layout(self, request: ScoreRequest) -> tuple[list[int], list[tuple[int, int]]]:
        """Policy-side ids of the chain and each step's token span."""
        prompt = self._prompt_ids(request.problem)
        steps = request.steps or [""]
        return chain_layout(self._piece_ids, prompt, steps, self.step_format.delimiter)

    @torch.no_grad()
    def rows(self, requests: list[ScoreRequest]) -> tuple[list[list[list[float]]], int]:
        """Feature rows per step of every chain, and the number of base tokens computed."""
        chains = [self.layout(r) for r in requests]
        plans = [self._plan(ids, spans) for ids, spans in chains]
        tokens = self._encode_shared_prompts(chains, plans)
        if tokens:  # fresh chains now find their prompt cached
            plans = [self._plan(*c) if p.cut == 0 else p for c, p in zip(chains, plans)]
        order = sorted(range(len(chains)), key=lambda i: len(chains[i][0]) - plans[i].cut)
        rows: list[list[list[float]]] = [[] for _ in chains]
        for batch in self._batches(order, chains):
            encoded = self._encode(
                [chains[i] for i in batch],
                [plans[i] for i in batch],
                [requests[i].steps or [""] for i in batch],
            )
            for i, values in zip(batch, encoded):
                rows[i] = values
            tokens += sum(len(chains[i][0]) - plans[i].cut for i in batch)
        return rows, tokens

    def _encode_shared_prompts(self, chains: list, plans: list[Plan]) -> int:
        """Encode once, and cache, a prompt that several chains with nothing cached start with
        (the N samples of best-of-N, the first-step candidates of a tree). Returns the tokens
        computed."""
        fresh = [
            tuple(ids[: spans[0][0] - 1]) if plan.cut == 0 and spans[0][0] > 1 else None
            for (ids, spans), plan in zip(chains, plans)
        ]
        return self.planner.encode(self.model, self.planner.shared(fresh), self.pad_id)

    def _batches(self, order: list[int], chains: list) -> list[list[int]]:
        """Consecutive chains of `order` in batches of at most max_batch_tokens padded tokens."""
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        for i in order:
            w = max(width, len(chains[i][0]))
            if current and (len(current) + 1) * w > self.max_batch_tokens:
                batches.append(current)
                current, w = [], len(chains[i][0])
            current.append(i)
            width = w
        return batches + ([current] if current else [])

    def _plan(self, ids: list[int], spans: list[tuple[int, int]]) -> Plan:
        """The longest cached prefix of the chain, its KV and its rows.

        Cached are whole step prefixes (a parent chain, through its last step's text) and the
        prompt without its last token (whose logits predict the first step's first token)."""
        cuts = [(spans[j - 1][1], True) for j in range(len(spans) - 1, 0, -1)]
        return self.planner.plan(ids, cuts + [(spans[0][0] - 1, False)])

    def _encode(self, batch: list, plans: list[Plan], texts: list) -> list[list[list[float]]]:
        """Feature rows of every step of a batch of chains, reusing planned prefixes."""
        suffixes = [ids[plan.cut :] for (ids, _), plan in zip(batch, plans)]
        out, input_ids, mask, _ = forward_cached(
            self.model, [p.kv for p in plans], suffixes, self.pad_id, self.prefix_cache is not None
        )
        width = input_ids.shape[1]
        width_c = mask.shape[1] - width  # the cached-prefix block
        results = []
        for b, ((ids, spans), plan) in enumerate(zip(batch, plans)):
            cut, known = plan.cut, plan.known
            # block column width - len(suffix) + t holds sequence position cut + t, whose logits
            # predict the token at cut + t + 1
            logp = torch.log_softmax(out.logits[b, width - len(suffixes[b]) : -1].float(), -1)
            chosen = logp.gather(1, torch.tensor(ids[cut + 1 :])[:, None])[:, 0]
            stats = (chosen, chosen - logp.max(-1).values, -(logp.exp() * logp).sum(-1))
            new = list(range(len(known), len(spans)))
            values = list(known) + evidence_rows(
                stats,
                [(texts[b][i], ids[spans[i][0] : spans[i][1]]) for i in new],
                [(spans[i][0] - cut - 1, spans[i][1] - cut - 1) for i in new],
                self.roles,
                known,
            )
            if self.prefix_cache is not None:
                keeps = [(spans[i][1], values[: i + 1]) for i in new]
                if cut < spans[0][0] - 1:
                    keeps.append((spans[0][0] - 1, []))  # the prompt, for sibling first steps
                kv = extract_tail(out.past_key_values, b, mask[b], width_c, plan.kv)
                self.planner.store(ids, kv, keeps, plan.kv)
            results.append(values)
        return results


class EvidencePRM:
    """ProcessRewardModel: the trained head over EvidenceFeatures of its base causal LM."""

    max_chains_per_call = DEFAULT_CHAINS_PER_CALL  # chains per score call (the controller's)

    def __init__(
        self,
        model: str | Path = "embedded",
        step_format: StepFormat | str | dict | None = None,
        dtype: str = "float32",
        max_batch_tokens: int = 16384,
        trust_remote_code: bool = False,
        threads: int | None = None,
        prefix_cache_mb: int = 1024,
        kv_cache: str = "radix",
    ):
        self.path = resolve_model_path(model, "prm")
        self.head, self.config, self.columns = load_evidence_head(self.path)
        base = str(self.config["base"])
        if base != "embedded" and not Path(base).is_absolute():
            base = str(self.path / base)
        if base != "embedded" and not Path(base).exists():
            where = "" if base == self.config["base"] else f" ({base})"
            raise ReasonerError(
                f"{self.path / CONFIG_FILE}: its base {self.config['base']!r}{where} does not "
                f"exist; the base checkpoint must be present to score with this PRM"
            )
        self.features = EvidenceFeatures(
            base,
            step_format,
            dtype,
            max_batch_tokens,
            trust_remote_code,
            prefix_cache_mb,
            threads,
            kv_cache,
        )
        self.step_format = self.features.step_format
        self.num_parameters = sum(p.numel() for p in self.features.model.parameters()) + sum(
            p.numel() for p in self.head.parameters()
        )

    @property
    def prefix_cache(self) -> RadixKVCache | PrefixKVCache | None:
        """The base LM's prefix cache (None when off)."""
        return self.features.prefix_cache

    def clear_cache(self) -> None:
        """Forget cached prefix encodings, so a search's cost does not depend on earlier ones."""
        if self.features.prefix_cache is not None:
            self.features.prefix_cache.clear()

    @torch.no_grad()
    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores for every chain and the number of base-model tokens computed."""
        rows, tokens = self.features.rows(requests)
        flat = [row for chain in rows for row in chain]
        x = torch.tensor(flat)[:, self.columns] if flat else None
        probs = torch.sigmoid(self.head(x)).tolist() if flat else []
        scores, k = [], 0
        for r, chain in zip(requests, rows):
            scores.append(probs[k : k + len(r.steps)])
            k += len(chain)
        return scores, tokens

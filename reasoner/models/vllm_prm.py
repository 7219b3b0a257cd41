"""vLLM PRM backend: every PRM family vLLM can serve, through its STEP pooler, one pass per chain.

- "lm-labels" families (our ER-PRMs, Math-Shepherd, ER-PRM, RLHFlow): the checkpoint is loaded as
  a token classifier (runner "pooling", convert "classify") whose one-output head is built from
  the LM head as row(+) - row(-) (hf_overrides classifier_from_token = [negative, positive],
  method "from_2_way_softmax"), so its output at a token is exactly z[+] - z[-]; the sigmoid is
  applied here, in float32.
- "token-class" (Qwen2.5-Math-PRM): vLLM's own Qwen2ForProcessRewardModel (the same
  Linear-ReLU-Linear head); the softmax over its classes is taken here.
- "value-head" (Skywork-o1-Open-PRM): not served: vLLM has no Qwen2ForPrmModel (Skywork's plugin
  targets vLLM 0.6), and vLLM's reward models expect a `score.*` head, not `v_head.summary`.
  Loading one is an error that says to use the HF backend.
The STEP pooler (pooling_type "STEP", task "token_classify") returns the output at every
position holding `step_tag_id`: the tag, or for RLHFlow's chat turns the token before each
assistant reply (the same "\n\n" id at every step, which also follows other headers); the
builder's readout positions are picked from them. Inputs are PRMInputBuilder's, the same ids as
HFPRM and PRM training; every id is checked before the engine is started.

Prefix reuse (prefix_reuse=True; off by default for now, see benchmarks/results/kvcache): vLLM 0.32 refuses prefix caching with the STEP
pooler (ModelConfig.is_prefix_caching_supported), and a token_classify request skips reading the
cache by default, because a cached prefix has no hidden states to pool. So the engine pools "ALL"
with prefix caching on and each request reads the cache: vLLM returns the outputs of the tokens it
computed (the chain's tail past num_cached_tokens), and the outputs at step-id positions inside the
cached head are the ones this PRM read when it scored the chain that head belongs to (kept here by
a digest of the ids up to that position; causal attention makes them the same). A chain whose
head was cached but whose outputs were forgotten is scored again without reading the cache.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.models.heads import check_architecture_fits
from reasoner.models.prm_input import PROBE, prm_input_builder
from reasoner.models.resolve import count_parameters, open_checkpoint
from reasoner.models.vllm_engine import build_engine, is_cpu_build, prepare_vllm
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError

# the vLLM model of each head readout ("lm-labels": any causal LM, converted to a classifier)
VLLM_HEAD_ARCHITECTURES = {"token-class": "Qwen2ForProcessRewardModel"}
# with prefix reuse on CPU: vLLM's CPU default block (128 tokens) is longer than most steps, and
# only whole blocks are reused; its attention needs a multiple of 32 (16 is the GPU default)
CPU_REUSE_BLOCK_SIZE = 32
KNOWN_OUTPUTS_MAX = 1 << 20  # step-position outputs remembered for cached heads (LRU)


def step_digests(ids: list[int], positions: list[int]) -> list[bytes]:
    """A digest of ids[: p + 1] for each of the increasing `positions` (one pass over ids)."""
    h = hashlib.blake2b(digest_size=16)
    out, at = [], 0
    for p in positions:
        h.update(array("q", ids[at : p + 1]).tobytes())
        at = p + 1
        out.append(h.copy().digest())
    return out


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class VLLMPRM:
    """A local PRM ("lm-labels" or "token-class" readout) served by vLLM's STEP pooler.

    Options as VLLMPolicy (dtype, tensor_parallel_size, gpu_memory_utilization,
    kv_cache_memory_bytes, max_model_len, enforce_eager, trust_remote_code, threads,
    engine_options); prefix_reuse: score only what vLLM's prefix cache does not hold (see the
    module docstring; False, the default: the STEP pooler, every chain computed whole).
    """

    max_chains_per_call = DEFAULT_CHAINS_PER_CALL  # chains per score call (the controller's)

    def __init__(
        self,
        model: str | Path = "embedded-lm",
        step_format: StepFormat | str | dict | None = None,
        dtype: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float | None = None,
        kv_cache_memory_bytes: int | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
        seed: int = 0,
        engine_options: dict[str, Any] | None = None,
        prefix_reuse: bool = False,
    ):
        ckpt = open_checkpoint(model, "lm-prm", step_format, trust_remote_code, needs_config="vLLM")
        self.path = ckpt.path
        self.step_format = ckpt.step_format
        self.tokenizer = ckpt.tokenizer
        fmt = self.step_format.prm_format
        check_architecture_fits(self.path, ckpt.config, fmt)
        # checks every id the format reads (a ReasonerError otherwise)
        self.builder = prm_input_builder(self.path, self.tokenizer, self.step_format)
        self.step_id = self._step_id()
        overrides = self._model_overrides(ckpt.config)
        prepare_vllm(threads)
        from vllm.config import PoolerConfig

        self.prefix_reuse = prefix_reuse
        self.read_prefix_cache = prefix_reuse  # False: every chain computed whole (a reference)
        self._known: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        options = dict(engine_options or {})
        if prefix_reuse and is_cpu_build():
            options.setdefault("block_size", CPU_REUSE_BLOCK_SIZE)
        pooler = (
            PoolerConfig(task="token_classify", pooling_type="ALL")
            if prefix_reuse
            else PoolerConfig(task="token_classify", pooling_type="STEP", step_tag_id=self.step_id)
        )
        self.llm = build_engine(
            self.path,
            what="PRM",
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            enable_prefix_caching=True if prefix_reuse else None,
            trust_remote_code=trust_remote_code,
            threads=threads,
            seed=seed,
            engine_options={
                "runner": "pooling",
                **overrides,
                "pooler_config": pooler,
                **options,
            },
        )
        self.max_context = int(self.llm.model_config.max_model_len)
        self.builder.max_length = self.max_context
        self.num_parameters = count_parameters(self.path, trust_remote_code)
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        self._PoolingParams = PoolingParams
        self._TokensPrompt = TokensPrompt

    def _step_id(self) -> int:
        """The id at every readout position (the STEP pooler's step_tag_id): the tag, or the
        token a chat layout reads before each assistant turn (one id, checked on a probe)."""
        if self.builder.tag_id is not None:
            return self.builder.tag_id
        ids, readouts = self.builder.build(*PROBE)
        found = sorted({ids[t] for t in readouts})
        if len(found) != 1:
            raise ReasonerError(
                f"PRM format {self.builder.format.name!r}: its readout tokens are several ids "
                f"{found}; vLLM's step pooler reads one: use backend 'hf'"
            )
        return found[0]

    def _model_overrides(self, config: dict[str, Any]) -> dict[str, Any]:
        """How vLLM builds the model: a causal LM converted to the label-logit classifier, or
        vLLM's own head model; a readout vLLM cannot serve is an error before any engine."""
        readout = self.builder.format.readout
        archs = config.get("architectures") or []
        if readout == "lm-labels":
            if archs and not any(a.endswith("ForCausalLM") for a in archs):
                raise ReasonerError(
                    f"VLLMPRM reads the label-token logits of a causal LM at each step; "
                    f"{str(self.path)!r} is a {archs[0]}, not a *ForCausalLM checkpoint"
                )
            labels = self.tokenizer.convert_ids_to_tokens(
                [self.builder.neg_id, self.builder.pos_id]
            )
            hf = {"classifier_from_token": list(labels), "method": "from_2_way_softmax"}
            # a trainer's subclass name (ER-PRM's CustomLlamaForCausalLM): its weights are the
            # model type's causal LM's
            plain = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.get("model_type", ""))
            if archs and not hasattr(transformers, archs[0]) and plain:
                hf["architectures"] = [plain]
            return {"convert": "classify", "hf_overrides": hf}
        want = VLLM_HEAD_ARCHITECTURES.get(readout)
        if want is None:
            raise ReasonerError(
                f"vLLM cannot serve a {readout} PRM ({self.builder.format.name!r}: vLLM has no "
                f"model with its head, e.g. Skywork's Qwen2ForPrmModel): use backend 'hf'"
            )
        if want not in archs:
            raise ReasonerError(
                f"vLLM serves a {readout} PRM as {want}; {str(self.path)!r} is a "
                f"{archs[0] if archs else 'model without architectures'}: use backend 'hf'"
            )
        return {}

    def clear_cache(self) -> None:
        """Forget vLLM's cached prefixes and the outputs kept for them, so a search's cost does
        not depend on earlier ones."""
        if self.prefix_reuse:
            self.llm.reset_prefix_cache()
            self._known.clear()

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores for every chain (all chains in one vLLM call) and the tokens computed."""
        built = [self.builder.build(r.problem, r.steps) for r in requests]
        if not built:
            return [], 0
        if not self.prefix_reuse:
            return self._score_whole(built)
        outs = self._encode([ids for ids, _ in built], self.read_prefix_cache)
        rows: list[torch.Tensor | None] = []
        tokens = 0
        for (ids, _), out in zip(built, outs):
            got, computed = self._step_outputs(ids, out)
            rows.append(got)
            tokens += computed
        again = [i for i, r in enumerate(rows) if r is None]
        if again:  # a cached head whose outputs were forgotten: computed whole
            for i, out in zip(again, self._encode([built[i][0] for i in again], False)):
                rows[i], computed = self._step_outputs(built[i][0], out)
                tokens += computed
        scores = []
        for (ids, tags), data in zip(built, rows):
            assert data is not None
            at = [i for i, t in enumerate(ids) if t == self.step_id]
            index = {pos: k for k, pos in enumerate(at)}
            if any(p not in index for p in tags):
                raise ReasonerError("a readout position does not hold the step id (not one id)")
            scores.append(self._read(data, [index[p] for p in tags]) if tags else [])
        return scores, tokens

    def _encode(self, chains: list[list[int]], read_cache: bool) -> list:
        outs = self.llm.encode(
            [self._TokensPrompt(prompt_token_ids=ids) for ids in chains],
            pooling_task="token_classify",
            pooling_params=self._PoolingParams(
                use_activation=False, skip_reading_prefix_cache=not read_cache
            ),
            use_tqdm=False,
        )
        if len(outs) != len(chains):
            raise ReasonerError(f"vLLM returned {len(outs)} outputs for {len(chains)} chains")
        return outs

    def _step_outputs(self, ids: list[int], out: Any) -> tuple[torch.Tensor | None, int]:
        """The outputs at every step-id position of a chain (None if a cached one is unknown)
        and the tokens vLLM computed; the computed ones are remembered."""
        cached = int(getattr(out, "num_cached_tokens", 0) or 0)
        data = out.outputs.data.float()
        if data.ndim == 1:  # one output per token
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] != len(ids) - cached:
            raise ReasonerError(
                f"vLLM's pooler returned {tuple(data.shape)} values for the {len(ids) - cached} "
                f"tokens it computed of a {len(ids)}-token chain"
            )
        at = [i for i, t in enumerate(ids) if t == self.step_id]
        rows = []
        for pos, key in zip(at, step_digests(ids, at)):
            if pos >= cached:
                row = data[pos - cached].clone()
                self._known[key] = row
            else:
                row = self._known.get(key)
                if row is None:
                    return None, len(ids) - cached
            self._known.move_to_end(key)
            rows.append(row)
        while len(self._known) > KNOWN_OUTPUTS_MAX:
            self._known.popitem(last=False)
        return (torch.stack(rows) if rows else data[:0]), len(ids) - cached

    def _score_whole(self, built: list[tuple[list[int], list[int]]]) -> tuple[list, int]:
        """The STEP pooler's path: every chain computed whole, the outputs at its step ids."""
        prompts = [self._TokensPrompt(prompt_token_ids=ids) for ids, _ in built]
        outs = self.llm.encode(
            prompts,
            pooling_task="token_classify",
            pooling_params=self._PoolingParams(use_activation=False),
            use_tqdm=False,
        )
        if len(outs) != len(built):
            raise ReasonerError(f"vLLM returned {len(outs)} outputs for {len(built)} chains")
        scores: list[list[float]] = []
        tokens = 0
        tag = self.step_id
        for (ids, tags), out in zip(built, outs):
            # the pooler reads every position holding the step id; keep the builder's readouts
            at = [i for i, t in enumerate(ids) if t == tag]
            data = out.outputs.data.float()
            if (data.shape[0] if data.ndim else 0) != len(at):
                raise ReasonerError(
                    f"vLLM's step pooler returned {tuple(data.shape)} values for {len(at)} steps"
                )
            index = {pos: k for k, pos in enumerate(at)}
            if any(p not in index for p in tags):
                raise ReasonerError("a readout position does not hold the step id (not one id)")
            rows = [index[p] for p in tags]
            scores.append(self._read(data.reshape(len(at), -1), rows) if rows else [])
            tokens += len(ids) - int(getattr(out, "num_cached_tokens", 0) or 0)
        return scores, tokens

    def _read(self, data: torch.Tensor, rows: list[int]) -> list[float]:
        """Step scores from the pooler's rows: sigmoid of the label-logit gap, or the softmax's
        positive class."""
        if self.builder.format.readout == "lm-labels":
            return [_sigmoid(float(data[r, 0])) for r in rows]
        probs = data[rows].softmax(dim=-1)[:, self.builder.format.positive_class]
        return probs.tolist()

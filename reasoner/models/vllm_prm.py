"""vLLM PRM backend for Math-Shepherd-style PRMs and our ER-PRMs: vLLM's STEP pooler.

A causal-LM PRM scores step i as sigmoid(z[+] - z[-]) at the i-th step tag (HFPRM). vLLM serves
that in one pass per chain without our own model code:
- the checkpoint is loaded as a token classifier (runner "pooling", convert "classify") whose
  one-output head is built from the LM head as row(+) - row(-) (hf_overrides
  classifier_from_token = [negative, positive], method "from_2_way_softmax"), so its output at a
  token is exactly z[+] - z[-];
- the STEP pooler (pooling_type "STEP", step_tag_id = the tag id, task "token_classify") returns
  that output at every position holding the tag;
- activation is switched off per request and the sigmoid applied here, in float32.
Inputs are built by PRMInputBuilder, the same ids as HFPRM and PRM training; the tag and label
tokens are checked to be single tokens before the engine is started.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.models.hf_prm import PRMInputBuilder
from reasoner.models.resolve import count_parameters, open_checkpoint
from reasoner.models.vllm_engine import build_engine, prepare_vllm
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class VLLMPRM:
    """A local causal-LM PRM served by vLLM's STEP pooler.

    Options as VLLMPolicy (dtype, tensor_parallel_size, gpu_memory_utilization,
    kv_cache_memory_bytes, max_model_len, enforce_eager, trust_remote_code, threads,
    engine_options).
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
    ):
        ckpt = open_checkpoint(model, "lm-prm", step_format, trust_remote_code, needs_config="vLLM")
        self.path = ckpt.path
        archs = ckpt.config.get("architectures") or []
        if archs and not any(a.endswith("ForCausalLM") for a in archs):
            raise ReasonerError(
                f"VLLMPRM reads the label-token logits of a causal LM at each step tag; "
                f"{str(self.path)!r} is a {archs[0]}, not a *ForCausalLM checkpoint"
            )
        self.step_format = ckpt.step_format
        self.tokenizer = ckpt.tokenizer
        # checks the tag and both label tokens are single tokens (a ReasonerError otherwise)
        self.builder = PRMInputBuilder(self.tokenizer, self.step_format)
        labels = self.tokenizer.convert_ids_to_tokens([self.builder.neg_id, self.builder.pos_id])
        for tid, tok in zip((self.builder.neg_id, self.builder.pos_id), labels):
            if tok is None or self.tokenizer.convert_tokens_to_ids(tok) != tid:
                raise ReasonerError(
                    f"PRM label token id {tid} has no unique token string ({tok!r}); vLLM's "
                    "classifier_from_token cannot name it"
                )
        prepare_vllm(threads)
        from vllm.config import PoolerConfig

        self.llm = build_engine(
            self.path,
            what="PRM",
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            enable_prefix_caching=None,
            trust_remote_code=trust_remote_code,
            threads=threads,
            seed=seed,
            engine_options={
                "runner": "pooling",
                "convert": "classify",
                "hf_overrides": {
                    "classifier_from_token": list(labels),
                    "method": "from_2_way_softmax",
                },
                "pooler_config": PoolerConfig(
                    task="token_classify", pooling_type="STEP", step_tag_id=self.builder.tag_id
                ),
                **(engine_options or {}),
            },
        )
        self.max_context = int(self.llm.model_config.max_model_len)
        self.builder.max_length = self.max_context
        self.num_parameters = count_parameters(self.path, trust_remote_code)
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        self._PoolingParams = PoolingParams
        self._TokensPrompt = TokensPrompt

    def clear_cache(self) -> None:
        """Nothing of ours is cached (vLLM's pooling runs do not read a prefix cache)."""

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores for every chain (one pass per chain, all chains in one vLLM call)."""
        built = [self.builder.build(r.problem, r.steps) for r in requests]
        if not built:
            return [], 0
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
        tag = self.builder.tag_id
        for (ids, tags), out in zip(built, outs):
            values = out.outputs.data.float().reshape(-1).tolist()
            # the pooler reads every position holding the tag id; keep the builder's tag positions
            at = [i for i, t in enumerate(ids) if t == tag]
            if len(values) != len(at):
                raise ReasonerError(
                    f"vLLM's step pooler returned {len(values)} values for {len(at)} step tags"
                )
            index = {pos: k for k, pos in enumerate(at)}
            scores.append([_sigmoid(values[index[p]]) for p in tags])
            tokens += len(ids) - int(getattr(out, "num_cached_tokens", 0) or 0)
        return scores, tokens

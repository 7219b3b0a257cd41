"""vLLM policy backend: batched n-sampling of next steps from token-id prefixes.

Same contract as HFPolicy (reasoner.models.hf_policy), only the sampler differs:
- prompts are the tree's token ids (vllm TokensPrompt), never re-tokenized text;
- each request samples its k continuations as one vLLM request with n=k; sample j is seeded
  (request seed key + j), so sample j is the same whatever k is (vLLM seeds child j of an n-request
  with seed + j), and a request's samples do not depend on what else shares the batch;
- a "step" request stops at the step delimiter (vLLM stop string); an "end" request runs to
  end-of-sequence or its token cap in one go;
- the returned tokens are replayed through the same step rules as HFPolicy (StepAssembler below):
  a step ends when its decoded text contains the delimiter (the delimiter's ids stay in the step's
  token_ids, so the tree prefix is exact), at EOS (finished) or at a cap (truncated). Tokens vLLM
  produced past the point where those rules end a continuation are dropped and not counted; a
  continuation the rules say is not over (a bare delimiter) is resumed in a follow-up request;
- logprobs are the sampled tokens' log-probabilities under the untempered distribution (vLLM's
  default raw_logprobs), summed per step.
With temperature 0 (greedy) the steps equal HFPolicy's on the same checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasoner.models.base import Continuation, GenRequest, StepPiece
from reasoner.models.resolve import load_step_format, load_tokenizer, resolve_model_path
from reasoner.models.sampling import row_key
from reasoner.models.vllm_engine import build_engine, count_parameters, read_model_config
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError

_MASK31 = 0x7FFFFFFF


class StepAssembler:
    """HFPolicy's step rules, fed one sampled token at a time (kept identical on purpose)."""

    def __init__(self, tokenizer: Any, step_format: StepFormat, eos_ids: set[int]):
        self.tokenizer = tokenizer
        self.step_format = step_format
        self.eos_ids = eos_ids
        self._last = step_format.delimiter[-1]
        self._maybe: dict[int, bool] = {}

    def maybe_delimiter(self, tok: int) -> bool:
        """Whether a token's text holds the delimiter's last character (only these end a step)."""
        hit = self._maybe.get(tok)
        if hit is None:
            piece = self.tokenizer.convert_ids_to_tokens([tok])[0]
            hit = piece is not None and self._last in self.tokenizer.convert_tokens_to_string(
                [piece]
            )
            self._maybe[tok] = hit
        return hit

    def advance(self, row: dict, tok: int, lp: float) -> bool:
        """Append a token to a row; close steps at the delimiter; False once the row is done."""
        cont: Continuation = row["cont"]
        cont.new_tokens += 1
        row["step_ids"].append(tok)
        row["step_lp"] += lp
        if tok in self.eos_ids:
            self.close_step(row, truncated=False)
            cont.finished = True
            return False
        ended = False
        if self.maybe_delimiter(tok):
            text = self.tokenizer.decode(row["step_ids"], skip_special_tokens=True)
            ended = self.step_format.delimiter in text
        if ended and self.close_step(row, truncated=False):
            return len(cont.steps) < row["max_steps"] and cont.new_tokens < row["cap"]
        if (
            len(row["step_ids"]) >= self.step_format.max_step_tokens
            or cont.new_tokens >= row["cap"]
        ):
            self.close_step(row, truncated=True)
            cont.truncated = True
            return False
        return True

    def close_step(self, row: dict, truncated: bool) -> bool:
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


def _mix(seed: int, index: int) -> int:
    """A non-negative 31-bit vLLM seed for stream `index` of `seed` (vLLM adds j for sample j)."""
    return row_key(seed, index) & _MASK31


class VLLMPolicy:
    """A local HF checkpoint served by vLLM that proposes steps.

    Options: dtype (default: float32 on CPU, the checkpoint's on GPU), tensor_parallel_size,
    gpu_memory_utilization (on CPU: the share of RAM for the KV cache), kv_cache_memory_bytes,
    max_model_len, enforce_eager, enable_prefix_caching (on), top_p, threads (CPU: OpenMP threads,
    bound through VLLM_CPU_OMP_THREADS_BIND unless it is set), trust_remote_code, and
    engine_options: any other vllm.LLM keyword.
    """

    def __init__(
        self,
        model: str | Path = "embedded",
        step_format: StepFormat | str | dict | None = None,
        dtype: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float | None = None,
        kv_cache_memory_bytes: int | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        enable_prefix_caching: bool = True,
        top_p: float = 1.0,
        trust_remote_code: bool = False,
        threads: int | None = None,
        seed: int = 0,
        engine_options: dict[str, Any] | None = None,
    ):
        if not 0.0 < top_p <= 1.0:
            raise ReasonerError(f"top_p must be in (0, 1], got {top_p}")
        self.path = resolve_model_path(model, "policy")
        config = read_model_config(self.path)
        self.step_format = load_step_format(self.path, step_format)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code)
        self.top_p = top_p
        self.llm = build_engine(
            self.path,
            what="policy",
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            enable_prefix_caching=enable_prefix_caching,
            trust_remote_code=trust_remote_code,
            threads=threads,
            seed=seed,
            engine_options=dict(engine_options or {}),
        )
        self.max_context = int(self.llm.model_config.max_model_len)
        self.num_parameters = count_parameters(self.path, trust_remote_code)
        self.eos_ids = self._eos_ids(config)
        self.assembler = StepAssembler(self.tokenizer, self.step_format, self.eos_ids)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._SamplingParams = SamplingParams
        self._TokensPrompt = TokensPrompt

    def _eos_ids(self, config: dict[str, Any]) -> set[int]:
        """HFPolicy's end-of-sequence ids: the generation config's (else the model config's)
        eos_token_id, plus the tokenizer's."""
        source = config
        gen_cfg = self.path / "generation_config.json"
        if gen_cfg.exists():
            source = json.loads(gen_cfg.read_text())
        eos = source.get("eos_token_id")
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return {int(i) for i in ids}

    # ------------------------------------------------------------------------------------------
    def encode_prompt(self, problem_text: str) -> list[int]:
        """Prompt ids (chat template or plain template, with BOS when the model uses one)."""
        return self.step_format.encode_prompt(problem_text, self.tokenizer, self.max_context)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------------------
    def _params(self, row: dict, n: int, seed: int, budget: int) -> Any:
        return self._SamplingParams(
            n=n,
            temperature=float(row["temp"]),
            top_p=self.top_p,
            seed=seed,
            max_tokens=max(1, budget),
            stop=[self.step_format.delimiter] if row["mode"] == "step" else None,
            include_stop_str_in_output=True,
            stop_token_ids=sorted(self.eos_ids),
            logprobs=0,
            detokenize=True,
        )

    def _budget(self, row: dict) -> int:
        """Tokens the row may still generate before a cap ends it."""
        left = row["cap"] - row["cont"].new_tokens
        if row["mode"] == "step":
            left = min(left, self.step_format.max_step_tokens - len(row["step_ids"]))
        return left

    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
        """Sample continuations for every request in one batched vLLM call (plus rare follow-ups)."""
        fmt = self.step_format
        rows: list[dict[str, Any]] = []
        prompts, params = [], []
        for b, r in enumerate(requests):
            if r.k < 1:
                raise ReasonerError(f"GenRequest.k must be >= 1, got {r.k}")
            if len(r.prefix_ids) >= self.max_context:
                raise ReasonerError(
                    f"a prefix of {len(r.prefix_ids)} tokens exceeds the policy context "
                    f"{self.max_context}"
                )
            max_steps = (r.max_steps or fmt.max_steps) if r.mode == "end" else 1
            cap = min(fmt.max_step_tokens * max_steps, self.max_context - len(r.prefix_ids) - 1)
            first = len(rows)
            for j in range(r.k):
                rows.append(
                    {
                        "req": b,
                        "j": j,
                        "seed": r.seed,
                        "temp": r.temperature,
                        "mode": r.mode,
                        "max_steps": max_steps,
                        "cap": max(1, cap),
                        "cont": Continuation(),
                        "prefix": list(r.prefix_ids),
                        "step_ids": [],
                        "step_lp": 0.0,
                        "round": 0,
                    }
                )
            prompts.append(self._TokensPrompt(prompt_token_ids=list(r.prefix_ids)))
            params.append(
                self._params(rows[first], r.k, _mix(r.seed, 0), self._budget(rows[first]))
            )
        outputs = self._run(prompts, params)
        pending: list[dict] = []
        at = 0
        for r, out in zip(requests, outputs):
            computed = len(r.prefix_ids) - int(out.num_cached_tokens or 0)
            by_index = sorted(out.outputs, key=lambda c: c.index)
            if len(by_index) != r.k:
                raise ReasonerError(f"vLLM returned {len(by_index)} samples, {r.k} were asked")
            for j, sample in enumerate(by_index):
                row = rows[at + j]
                if j == 0:
                    row["cont"].prompt_tokens += computed
                if self._consume(row, sample):
                    pending.append(row)
            at += r.k
        while pending:  # rows the step rules say are not over (e.g. a bare delimiter)
            prompts, params = [], []
            for row in pending:
                row["round"] += 1
                seed = _mix(row_key(row["seed"], row["j"]), row["round"])
                prompts.append(self._TokensPrompt(prompt_token_ids=self._sequence(row)))
                params.append(self._params(row, 1, seed, self._budget(row)))
            outputs = self._run(prompts, params)
            still = []
            for row, prompt, out in zip(pending, prompts, outputs):
                row["cont"].prompt_tokens += len(prompt["prompt_token_ids"]) - int(
                    out.num_cached_tokens or 0
                )
                if self._consume(row, out.outputs[0]):
                    still.append(row)
            pending = still
        results: list[list[Continuation]] = [[] for _ in requests]
        for row in rows:
            results[row["req"]].append(row["cont"])
        return results

    def _run(self, prompts: list, params: list) -> list:
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        if len(outs) != len(prompts):
            raise ReasonerError(f"vLLM returned {len(outs)} outputs for {len(prompts)} prompts")
        return outs

    @staticmethod
    def _sequence(row: dict) -> list[int]:
        done = [t for piece in row["cont"].steps for t in piece.token_ids]
        return row["prefix"] + done + row["step_ids"]

    def _consume(self, row: dict, sample: Any) -> bool:
        """Replay a vLLM sample through the step rules; True if the row must be resumed."""
        ids = list(sample.token_ids)
        lps = sample.logprobs or []
        for i, tok in enumerate(ids):
            lp = 0.0
            if i < len(lps) and lps[i] is not None and tok in lps[i]:
                lp = float(lps[i][tok].logprob)
            if not self.assembler.advance(row, int(tok), lp):
                return False
        if not ids or self._budget(row) <= 0:  # nothing new: end it rather than loop
            self.assembler.close_step(row, truncated=True)
            row["cont"].truncated = True
            return False
        return True

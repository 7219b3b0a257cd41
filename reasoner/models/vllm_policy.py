"""vLLM policy backend: batched n-sampling of next steps from token-id prefixes.

Same contract as HFPolicy (reasoner.models.hf_policy), only the sampler differs:
- prompts are the tree's token ids (vllm TokensPrompt), never re-tokenized text;
- each request samples its k continuations as one vLLM request with n=k (greedy, temperature 0:
  k requests of n=1, which vLLM requires; they are equal, as HFPolicy's are); stream sample i
  (first_sample + j) is seeded (request seed key + i), so sample i is the same whatever k is and
  however the request is cut into parts (vLLM seeds child j of an n-request with seed + j), and a
  request's samples do not depend on what else shares the batch;
- a "step" request stops at the step delimiter (vLLM stop string); an "end" request runs to
  end-of-sequence or its token cap in one go;
- the returned tokens are replayed through the step rules HFPolicy decodes with
  (reasoner.models.step_rules): a step ends when its decoded text contains the delimiter (the
  delimiter's ids stay in the step's token_ids, so the tree prefix is exact), at EOS (finished) or
  at a cap (truncated). Tokens vLLM produced past the point where those rules end a continuation
  are dropped and not counted; a continuation the rules say is not over (a bare delimiter) is
  resumed in a follow-up request;
- logprobs are the sampled tokens' log-probabilities under the untempered distribution (vLLM's
  default raw_logprobs), summed per step.
With temperature 0 (greedy) the steps equal HFPolicy's on the same checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.models.base import Continuation, GenRequest
from reasoner.models.resolve import count_parameters, generation_eos, open_checkpoint
from reasoner.models.sampling import row_key
from reasoner.models.step_rules import (
    StepRow,
    StepRules,
    StepRulesPolicy,
    check_requests,
    eos_token_ids,
    start_rows,
)
from reasoner.models.vllm_engine import build_engine
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError

_MASK31 = 0x7FFFFFFF
GREEDY_BELOW = 1e-5  # vLLM samples greedily below this temperature (its _SAMPLING_EPS)


def _mix(seed: int, index: int) -> int:
    """A non-negative 31-bit vLLM seed for stream `index` of `seed` (vLLM adds j for sample j)."""
    return row_key(seed, index) & _MASK31


@dataclass
class _Row(StepRow):
    """A StepRow and the follow-up requests it has needed (each resumed round has its own seed)."""

    round: int = 0


class VLLMPolicy(StepRulesPolicy):
    """A local HF checkpoint served by vLLM that proposes steps.

    Options: dtype (default: float32 on CPU, the checkpoint's on GPU), tensor_parallel_size,
    gpu_memory_utilization (on CPU: the share of RAM for the KV cache), kv_cache_memory_bytes,
    max_model_len, enforce_eager, enable_prefix_caching (on), top_p, threads (CPU: OpenMP threads,
    bound through VLLM_CPU_OMP_THREADS_BIND unless it is set), trust_remote_code,
    engine_options: any other vllm.LLM keyword, and max_rows_per_call: the most samples the
    controller sends in one call (vLLM schedules them continuously; limits are checked between
    calls).
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
        max_rows_per_call: int = 1024,
    ):
        if not 0.0 < top_p <= 1.0:
            raise ReasonerError(f"top_p must be in (0, 1], got {top_p}")
        ckpt = open_checkpoint(model, "policy", step_format, trust_remote_code, needs_config="vLLM")
        self.path = ckpt.path
        self.tokenizer = ckpt.tokenizer
        self.top_p = top_p
        if isinstance(max_rows_per_call, bool) or not isinstance(max_rows_per_call, int):
            raise ReasonerError(f"max_rows_per_call must be an integer, got {max_rows_per_call!r}")
        if max_rows_per_call < 1:
            raise ReasonerError(f"max_rows_per_call must be >= 1, got {max_rows_per_call}")
        self.max_rows_per_call = max_rows_per_call
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
        # HFPolicy's end-of-sequence ids, read from the files HF transformers reads them from
        self.eos_ids = eos_token_ids(generation_eos(self.path, ckpt.config), self.tokenizer)
        self.rules = StepRules(self.tokenizer, ckpt.step_format, self.eos_ids)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._SamplingParams = SamplingParams
        self._TokensPrompt = TokensPrompt

    # ------------------------------------------------------------------------------------------
    def clear_cache(self) -> None:
        """Nothing of ours is cached (vLLM's engine keeps its own prefix cache, whose hits show
        as prompt tokens not computed)."""

    # ------------------------------------------------------------------------------------------
    def _params(self, row: StepRow, n: int, seed: int) -> Any:
        return self._SamplingParams(
            n=n,
            temperature=float(row.request.temperature),
            top_p=self.top_p,
            seed=seed,
            max_tokens=max(1, self.rules.tokens_left(row)),
            stop=[self.step_format.delimiter] if row.request.mode == "step" else None,
            include_stop_str_in_output=True,
            stop_token_ids=sorted(self.eos_ids),
            logprobs=0,
            detokenize=True,
        )

    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
        """Sample continuations for every request in one batched vLLM call (plus rare follow-ups)."""
        check_requests(requests, self.max_context)
        rows = start_rows(requests, self.step_format, self.max_context, _Row)
        firsts = [row for row in rows if row.sample == row.request.first_sample]
        prompts, params, owners = [], [], []
        for i, (r, row) in enumerate(zip(requests, firsts)):
            # child j of an n-request is seeded seed + j: stream sample first_sample + j gets the
            # seed it gets in a whole request
            seed = _mix(r.seed, 0) + row.sample
            # vLLM refuses n > 1 when greedy: k greedy samples are k requests of n = 1 (the
            # prompt's KV blocks are shared through the prefix cache)
            split = r.k > 1 and r.temperature < GREEDY_BELOW
            for j in range(r.k if split else 1):
                prompts.append(self._TokensPrompt(prompt_token_ids=list(r.prefix_ids)))
                params.append(self._params(row, 1 if split else r.k, seed + j))
                owners.append(i)
        outputs = self._run(prompts, params)
        firsts_out: list[Any] = [None] * len(requests)
        samples: list[list[Any]] = [[] for _ in requests]
        for i, out in zip(owners, outputs):
            if firsts_out[i] is None:  # the prefill of sample 0 is metered from its output
                firsts_out[i] = out
            samples[i].extend(sorted(out.outputs, key=lambda c: c.index))
        pending: list = []
        at = 0
        for r, out, by_index in zip(requests, firsts_out, samples):
            computed = len(r.prefix_ids) - int(out.num_cached_tokens or 0)
            if len(by_index) != r.k:
                raise ReasonerError(f"vLLM returned {len(by_index)} samples, {r.k} were asked")
            for j, sample in enumerate(by_index):
                row = rows[at + j]
                if row.sample == 0:  # the prefill is metered once per stream (Continuation)
                    row.cont.prompt_tokens += computed
                if self._consume(row, sample):
                    pending.append(row)
            at += r.k
        while pending:  # rows the step rules say are not over (e.g. a bare delimiter)
            prompts, params = [], []
            for row in pending:
                row.round += 1
                seed = _mix(row_key(row.request.seed, row.sample), row.round)
                sequence = row.request.prefix_ids + row.generated_ids() + row.step_ids
                prompts.append(self._TokensPrompt(prompt_token_ids=sequence))
                params.append(self._params(row, 1, seed))
            outputs = self._run(prompts, params)
            still = []
            for row, prompt, out in zip(pending, prompts, outputs):
                row.cont.prompt_tokens += len(prompt["prompt_token_ids"]) - int(
                    out.num_cached_tokens or 0
                )
                if self._consume(row, out.outputs[0]):
                    still.append(row)
            pending = still
        results: list[list[Continuation]] = [[] for _ in requests]
        for row in rows:
            results[row.slot].append(row.cont)
        return results

    def _run(self, prompts: list, params: list) -> list:
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        if len(outs) != len(prompts):
            raise ReasonerError(f"vLLM returned {len(outs)} outputs for {len(prompts)} prompts")
        return outs

    def _consume(self, row: StepRow, sample: Any) -> bool:
        """Replay a vLLM sample through the step rules; True if the row must be resumed."""
        ids = list(sample.token_ids)
        lps = sample.logprobs or []
        for i, tok in enumerate(ids):
            lp = 0.0
            if i < len(lps) and lps[i] is not None and tok in lps[i]:
                lp = float(lps[i][tok].logprob)
            if not self.rules.advance(row, int(tok), lp):
                return False
        if not ids or self.rules.tokens_left(row) <= 0:  # nothing new: end it rather than loop
            self.rules.cut(row)
            return False
        return True

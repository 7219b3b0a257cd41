"""its_hub adapters, written as a user of its_hub would: a language model on plain HF `generate`
or on reasoner's engine, a PRM (and the same PRM as an outcome scorer for best-of-N), and an
orchestrator that sends its_hub's parallel requests as one batch.

its_hub (1.2.0) talks text: a step is generated from the prompt plus the steps so far as one
string, and scored as the joined response. These adapters turn that text into token ids the way
the checkpoint's own step format renders a prompt (`Question: ...\nAnswer:\n`), sample with
temperature 1 and no top-k / top-p (reasoner's defaults), stop a step at the step delimiter
("\n\n") and a solution at "The answer is" (its_hub's stop_token) or end of sequence, and score
a response by splitting it at the delimiter and taking the min of the PRM's step scores (the
aggregation reasoner uses by default). Only its_hub and the model libraries are needed; this
module runs in the peer's own environment (.venv-peer, see README.md).
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from its_hub.api import (
    AbstractLanguageModel,
    AbstractOrchestrator,
    AbstractOutcomeRewardModel,
    AbstractProcessRewardModel,
    ChatMessage,
    ChatMessages,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasoner.aggregation import aggregate
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.step_format import StepFormat

STOP_TOKEN = "The answer is"  # its_hub's stop_token: a step holding it ends the solution


def conversation(messages: list[ChatMessage] | list[dict]) -> tuple[str, str]:
    """(problem, assistant text so far) of a [user, assistant?] conversation."""
    msgs = [m if isinstance(m, ChatMessage) else ChatMessage.from_dict(m) for m in messages]
    problem = next(m.extract_text_content() for m in msgs if m.role == "user")
    partial = "".join(m.extract_text_content() for m in msgs if m.role == "assistant")
    return problem, partial


class Meter:
    """What one adapter's model calls cost: calls, rows and new tokens."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0
        self.new_tokens = 0


class HFGenerateLM(AbstractLanguageModel):
    """A causal LM on plain transformers `generate`: one batched call per its_hub batch."""

    def __init__(self, path: str, step_format: StepFormat, max_context: int = 512):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.fmt = step_format
        self.max_context = max_context
        self.meter = Meter()

    def _batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Left-padded ids with the BOS token the checkpoint was trained with (its tokenizer
        does not add one)."""
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        rows = [bos + self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return {"input_ids": ids, "attention_mask": mask}

    def _text(self, messages) -> str:
        problem, partial = conversation(messages)
        return self.fmt.render_prompt(problem) + partial

    @torch.no_grad()
    async def agenerate(self, messages, stop=None, **kwargs) -> dict | list[dict]:
        single = isinstance(messages[0], (ChatMessage, dict))
        batch = [messages] if single else messages
        enc = self._batch([self._text(m) for m in batch])
        width = enc["input_ids"].shape[1]
        budget = self.max_context - width
        cap = kwargs.get("max_completion_tokens") or (self.fmt.max_step_tokens if stop else budget)
        options: dict[str, Any] = {
            "max_new_tokens": max(1, min(cap, budget)),
            "do_sample": True,
            "temperature": kwargs.get("temperature") or 1.0,
            "top_k": 0,
            "top_p": 1.0,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if stop:
            options.update(stop_strings=[stop], tokenizer=self.tokenizer)
        out = self.model.generate(**enc, **options)
        texts = []
        for row in out[:, width:].tolist():
            ids = [t for t in row if t != self.tokenizer.pad_token_id]
            self.meter.new_tokens += len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            texts.append(text.split(stop)[0] if stop else text)
        self.meter.calls += 1
        self.meter.rows += len(batch)
        responses = [{"role": "assistant", "content": t} for t in texts]
        return responses[0] if single else responses


class EngineLM(AbstractLanguageModel):
    """reasoner's policy backend (HFPolicy: shared prefill, KV reuse, batched step sampling)
    behind its_hub's text interface; identical prompts in a batch become one request of k
    samples."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.fmt: StepFormat = policy.step_format
        self.meter = Meter()
        self.key = ""  # the problem being solved: seeds are keyed by it and the call number

    def reset(self, key: str) -> None:
        """Key the next calls' seeds by `key` (one problem), so a run is reproducible."""
        self.key = key
        self.meter.calls = 0

    def _ids(self, messages) -> list[int]:
        problem, partial = conversation(messages)
        ids = self.policy.encode_prompt(problem)
        if partial:
            ids = ids + self.policy.tokenizer.encode(partial, add_special_tokens=False)
        return ids

    def _seed(self, group: int) -> int:
        return zlib.crc32(f"{self.key}:{self.meter.calls}:{group}".encode())

    async def agenerate(self, messages, stop=None, **kwargs) -> dict | list[dict]:
        single = isinstance(messages[0], (ChatMessage, dict))
        batch = [messages] if single else messages
        temperature = kwargs.get("temperature") or 1.0
        mode = "step" if stop else "end"
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, m in enumerate(batch):
            groups.setdefault(tuple(self._ids(m)), []).append(i)
        self.meter.calls += 1
        requests = [
            GenRequest(list(ids), len(rows), self._seed(g), mode, temperature)
            for g, (ids, rows) in enumerate(groups.items())
        ]
        outs = self.policy.generate(requests)
        texts: list[str] = [""] * len(batch)
        for rows, conts in zip(groups.values(), outs):
            for i, cont in zip(rows, conts):
                self.meter.new_tokens += cont.new_tokens
                texts[i] = self.fmt.join_steps([s.text for s in cont.steps])
        self.meter.rows += len(batch)
        responses = [{"role": "assistant", "content": t} for t in texts]
        return responses[0] if single else responses


class BatchOrchestrator(AbstractOrchestrator):
    """Sends its_hub's batch of conversations to the LM as one call (its default orchestrator
    calls the LM once per conversation)."""

    async def agenerate(self, lm, messages_lst, stop=None, **kwargs) -> list[dict]:
        options = {k: kwargs[k] for k in ("max_completion_tokens", "temperature") if k in kwargs}
        return await lm.agenerate(messages_lst, stop=stop, **options)


class ChainPRM(AbstractProcessRewardModel):
    """A reasoner PRM object scoring its_hub responses: steps split at the delimiter, one
    batched score call per its_hub call, min over the step scores."""

    def __init__(self, prm: Any, aggregation: str = "min"):
        self.prm = prm
        self.fmt: StepFormat = prm.step_format
        self.aggregation = aggregation
        self.tokens = 0

    def score_texts(self, problem: str, responses: list[str]) -> list[float]:
        requests = [ScoreRequest(problem, self.fmt.split_steps(r) or [""]) for r in responses]
        scores, tokens = self.prm.score(requests)
        self.tokens += tokens
        return [aggregate(s, self.aggregation) for s in scores]

    def score(self, prompt_or_messages, steps):
        problem, _ = conversation(
            ChatMessages.from_prompt_or_messages(prompt_or_messages).to_chat_messages()
        )
        single = isinstance(steps, str)
        out = self.score_texts(problem, [steps] if single else list(steps))
        return out[0] if single else out

    async def ascore(self, prompt_or_messages, steps):
        return self.score(prompt_or_messages, steps)


class ChainORM(AbstractOutcomeRewardModel):
    """The same PRM as an outcome scorer of whole conversations (its_hub's BestOfN)."""

    def __init__(self, prm: ChainPRM):
        self.prm = prm

    def score(self, messages, **kwargs):
        single = isinstance(messages[0], (ChatMessage, dict))
        batch = [messages] if single else messages
        pairs = [conversation(m) for m in batch]
        problem = pairs[0][0]
        out = self.prm.score_texts(problem, [partial for _, partial in pairs])
        return out[0] if single else out

    async def ascore(self, messages, orchestrator=None, **kwargs):
        return self.score(messages)

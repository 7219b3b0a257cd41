"""Reference PRM scorers, one per family, written from each model card's documented usage only.

Each `score_*(model, tokenizer, question, steps) -> list[float]` builds the input string the card
builds, tokenizes it the way the card does (whole string at once, or piece by piece for Skywork),
runs one transformers forward pass per input the card runs, and reads the documented positions and
ids. These are the golden references the product's `load_prm` is compared against (to 1e-5);
SPEC.md gives every fact with its source. Nothing here imports reasoner.

Each `load_*(ckpt_dir) -> (model, tokenizer)` builds the card's model class from config.json and
loads every tensor of the checkpoint strictly (a missing or unexpected key is an error, never a
random init), so a reference cannot silently score with a dropped head.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Model,
)

from .checkpoint_io import read_weights

# Math-Shepherd card: good_token '+', bad_token '-', step_tag 'ки'.
SHEPHERD_GOOD, SHEPHERD_BAD, SHEPHERD_TAG = "+", "-", "ки"
# Qwen2.5-Math-PRM card: the system prompt of its example and the step separator token.
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_PRM_STEP = "<extra_0>"
# Skywork card: prepare_input(..., step_token="\n").
SKYWORK_STEP = "\n"
# ER-PRM training/eval code (Llama-3 branch): tag " ки", labels " +" / " -".
ER_TAG, ER_GOOD, ER_BAD = " ки", " +", " -"


def _one_per_step(scores: torch.Tensor, steps: Sequence[str], family: str) -> list[float]:
    """The read scores as floats; the cards return every tag position, we insist on one per step."""
    values = [float(x) for x in scores.reshape(-1)]
    if len(values) != len(steps):
        raise ValueError(
            f"{family}: {len(values)} readout positions for {len(steps)} steps "
            "(a step or the question contains the step tag / separator)"
        )
    return values


def _strict_load(model: nn.Module, state: dict[str, torch.Tensor], ckpt_dir: Path) -> nn.Module:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_dir}: missing keys {missing}, unexpected keys {unexpected}")
    return model.eval()


def _chat_input_ids(tokenizer: PreTrainedTokenizerBase, conversation: list[dict]) -> torch.Tensor:
    """`apply_chat_template(conversation, return_tensors="pt")` as the card calls it (ids only)."""
    encoded = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return encoded["input_ids"]


# ---------------------------------------------------------------------------------- loaders


def _load_causal_lm(
    ckpt_dir: Path, config_cls, model_cls
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    ckpt_dir = Path(ckpt_dir)
    model = model_cls(config_cls.from_pretrained(ckpt_dir))
    return _strict_load(model, read_weights(ckpt_dir), ckpt_dir), AutoTokenizer.from_pretrained(
        ckpt_dir
    )


def load_math_shepherd(ckpt_dir: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The card: AutoModelForCausalLM (a MistralForCausalLM) and AutoTokenizer of the checkpoint."""
    return _load_causal_lm(ckpt_dir, MistralConfig, MistralForCausalLM)


def load_rlhflow(ckpt_dir: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """math-rm/prm_evaluate.py: AutoModelForCausalLM (a LlamaForCausalLM) and AutoTokenizer."""
    return _load_causal_lm(ckpt_dir, LlamaConfig, LlamaForCausalLM)


def load_er_prm(ckpt_dir: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """ER-PRM evaluation code: AutoModelForCausalLM (its weights are a LlamaForCausalLM's)."""
    return _load_causal_lm(ckpt_dir, LlamaConfig, LlamaForCausalLM)


class QwenProcessRewardModel(nn.Module):
    """Qwen2.5-Math-PRM's architecture: Qwen2 base, then Linear(h, h) -> ReLU -> Linear(h, 2).

    forward returns the per-token class logits [batch, seq, 2] (the card's `outputs[0]`).
    """

    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.model = Qwen2Model(config)
        hidden = config.hidden_size
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.score(self.model(input_ids=input_ids).last_hidden_state)


def load_qwen_math_prm(ckpt_dir: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The card loads AutoModel with trust_remote_code; we build the same architecture locally."""
    ckpt_dir = Path(ckpt_dir)
    model = QwenProcessRewardModel(Qwen2Config.from_pretrained(ckpt_dir))
    return _strict_load(model, read_weights(ckpt_dir), ckpt_dir), AutoTokenizer.from_pretrained(
        ckpt_dir
    )


class SkyworkValueHeadPRM(nn.Module):
    """Skywork's PRM_MODEL: a causal LM plus `v_head.summary` = Linear(h, 1) on the last hidden state.

    forward returns sigmoid(v_head(hidden_states[-1])) per token (the card's return_probs=True).
    """

    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.pretrained_model = Qwen2ForCausalLM(config)
        self.v_head = nn.Module()
        self.v_head.summary = nn.Linear(config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.pretrained_model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return torch.sigmoid(self.v_head.summary(out.hidden_states[-1]).squeeze(-1))


def load_skywork_prm(ckpt_dir: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The card: PRM_MODEL.from_pretrained (causal LM + v_head from the same weight file)."""
    ckpt_dir = Path(ckpt_dir)
    model = SkyworkValueHeadPRM(Qwen2Config.from_pretrained(ckpt_dir))
    state = {
        (k if k.startswith("v_head.") else f"pretrained_model.{k}"): v
        for k, v in read_weights(ckpt_dir).items()
    }
    return _strict_load(model, state, ckpt_dir), AutoTokenizer.from_pretrained(ckpt_dir)


# ---------------------------------------------------------------------------------- scorers


@torch.no_grad()
def score_math_shepherd(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, question: str, steps: Sequence[str]
) -> list[float]:
    """Math-Shepherd card: f"{question} {output}", each step followed by " ки", steps joined by
    "\\n"; the joined string tokenized at once (BOS added); softmax over the logits of the two
    label ids at each ки position, probability of "+"."""
    candidate_tokens = tokenizer.encode(f"{SHEPHERD_GOOD} {SHEPHERD_BAD}")[1:]  # [648, 387]
    step_tag_id = tokenizer.encode(SHEPHERD_TAG)[-1]  # 12902
    output = "\n".join(f"{step} {SHEPHERD_TAG}" for step in steps)
    input_id = torch.tensor([tokenizer.encode(f"{question} {output}")])
    logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return _one_per_step(scores[input_id == step_tag_id], steps, "math-shepherd")


@torch.no_grad()
def score_rlhflow(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, question: str, steps: Sequence[str]
) -> list[float]:
    """RLHFlow math-rm/prm_evaluate.py: each step a user turn (the first prefixed by the question
    and a space), each followed by an assistant turn "+"; after adding step k the conversation so
    far goes through the chat template, and the "+"/"-" logits at position -3 (the token before the
    assistant's "+") give softmax probability of "+". One forward pass per step."""
    plus_tag_id = tokenizer.encode("+")[-1]
    minus_tag_id = tokenizer.encode("-")[-1]
    candidate_tokens = [plus_tag_id, minus_tag_id]
    conversation: list[dict] = []
    scores = []
    for k, step in enumerate(s.strip() for s in steps):
        text = question + " " + step if k == 0 else step
        conversation.append({"content": text, "role": "user"})
        conversation.append({"content": "+", "role": "assistant"})
        input_ids = _chat_input_ids(tokenizer, conversation)
        logits = model(input_ids).logits[:, -3, candidate_tokens]
        scores.append(logits.softmax(dim=-1)[:, 0])
    return _one_per_step(torch.cat(scores) if scores else torch.empty(0), steps, "rlhflow")


@torch.no_grad()
def score_qwen_math_prm(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    steps: Sequence[str],
    system: str = QWEN_PRM_SYSTEM,
) -> list[float]:
    """Qwen2.5-Math-PRM card: system / user question / assistant "<extra_0>".join(steps) +
    "<extra_0>", rendered by the chat template (tokenize=False) then encoded whole; softmax of the
    two class logits at each <extra_0>, class 1 (positive)."""
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": question},
        {"role": "assistant", "content": QWEN_PRM_STEP.join(steps) + QWEN_PRM_STEP},
    ]
    conversation_str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=False
    )
    input_ids = torch.tensor([tokenizer.encode(conversation_str)])
    logits = model(input_ids=input_ids)
    step_sep_id = tokenizer.encode(QWEN_PRM_STEP)[0]
    token_masks = input_ids == step_sep_id
    probabilities = logits.softmax(dim=-1)
    return _one_per_step(probabilities[token_masks][:, 1], steps, "qwen2.5-math-prm")


@torch.no_grad()
def score_skywork_prm(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, question: str, steps: Sequence[str]
) -> list[float]:
    """Skywork io_utils.prepare_input: ids of bos_token + question + "\\n", then for each piece of
    the response split on "\\n" its own ids (tokenized on its own) plus the "\\n" id, flagged;
    reward = sigmoid(value head) at the flagged positions (derive_step_rewards)."""
    response = SKYWORK_STEP.join(steps)
    input_ids = tokenizer.encode(tokenizer.bos_token + question + "\n")
    reward_flags = [0] * len(input_ids)
    step_token_id = tokenizer.encode(SKYWORK_STEP)[-1]
    for step in response.split(SKYWORK_STEP):
        step_ids = tokenizer.encode(step) if step != "" else []
        step_ids += [step_token_id]
        input_ids += step_ids
        reward_flags += [0] * (len(step_ids) - 1) + [1]
    ids = torch.tensor([input_ids])
    rewards = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    flags = torch.tensor([reward_flags]) == 1
    return _one_per_step(rewards[flags], steps, "skywork-prm")


@torch.no_grad()
def score_er_prm(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, question: str, steps: Sequence[str]
) -> list[float]:
    """ER-PRM (README usage + Llama-3 training code): steps each followed by " ки" joined by "\\n",
    then " ки\\n" -> " ки" (no separator left after a tag), f"{question} {output}" encoded whole;
    softmax over the " +"/" -" logits at each " ки" id, probability of " +"."""
    step_tag_id = tokenizer.encode(ER_TAG)[-1]
    candidate_tokens = [tokenizer.encode(ER_GOOD)[-1], tokenizer.encode(ER_BAD)[-1]]
    output = "\n".join(f"{step}{ER_TAG}" for step in steps).replace(f"{ER_TAG}\n", ER_TAG)
    input_id = torch.tensor([tokenizer.encode(f"{question} {output}")])
    logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return _one_per_step(scores[input_id == step_tag_id], steps, "er-prm")

"""Tiny random checkpoints of each real PRM family's architecture, laid out like the hub ones.

Each builder writes a directory a loader cannot tell from the real checkpoint except by size
(hidden 32, 2 layers): config.json with the real `architectures`/`model_type`/`auto_map`, weights
under the real tensor names in the real file format, and a tokenizer (see tiny_tokenizers). Weights
are drawn from a seeded generator with a large std so that scores differ clearly between positions
and label ids (a reader of the wrong position or id is off by far more than 1e-5).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Model,
)

from .checkpoint_io import write_config, write_weights
from .tiny_tokenizers import llama3_tokenizer, mistral_tokenizer, qwen25_tokenizer

TINY_DIMS = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
WEIGHT_STD = 0.3

# The remote-code entries the real configs carry (we never ship or run that code).
QWEN_PRM_AUTO_MAP = {
    "AutoConfig": "configuration_qwen2_rm.Qwen2RMConfig",
    "AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel",
}
SKYWORK_AUTO_MAP = {
    "AutoConfig": "configuration_qwen2_rm.Qwen2RMConfig",
    "AutoModel": "modeling_qwen2_rm.Qwen2ForRewardModel",
}


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Redraw every parameter from a generator seeded with `seed` (order: sorted names).

    Matrices N(0, WEIGHT_STD^2), biases N(0, 0.01), norm scales 1 + N(0, 0.01): independent of
    transformers' own init scheme, so a checkpoint is the same across transformers versions.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(module.named_parameters()):
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim >= 2:
                param.copy_(noise * WEIGHT_STD)
            elif name.endswith("bias"):
                param.copy_(noise * 0.1)
            else:
                param.copy_(1.0 + noise * 0.1)
    return module


def _ids(tok: PreTrainedTokenizerBase, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def _save(
    out_dir: Path,
    tok: PreTrainedTokenizerBase,
    config,
    state: dict[str, torch.Tensor],
    *,
    architectures: list[str],
    fmt: str,
    shards: int,
    auto_map: dict[str, str] | None = None,
) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config(out_dir, config, architectures=architectures, auto_map=auto_map)
    write_weights(out_dir, state, fmt=fmt, shards=shards)
    tok.save_pretrained(out_dir)
    return out_dir


def build_math_shepherd(out_dir: Path, *, seed: int = 0, fmt: str = "bin", shards: int = 2) -> Path:
    """peiyi9979/math-shepherd-mistral-7b-prm: MistralForCausalLM, the real Mistral-7B tokenizer.

    Needs mistral-common (the tokenizer file). Shipped as pytorch_model*.bin shards.
    """
    tok = mistral_tokenizer()
    config = MistralConfig(
        vocab_size=len(tok),
        bos_token_id=1,
        eos_token_id=2,
        sliding_window=4096,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        **TINY_DIMS,
    )
    model = randomize(MistralForCausalLM(config), seed)
    return _save(
        out_dir,
        tok,
        config,
        model.state_dict(),
        architectures=["MistralForCausalLM"],
        fmt=fmt,
        shards=shards,
    )


def build_rlhflow(
    out_dir: Path, *, seed: int = 0, fmt: str = "safetensors", shards: int = 2
) -> Path:
    """RLHFlow/Llama3.1-8B-PRM-{Deepseek,Mistral}-Data: LlamaForCausalLM from Llama-3.1-8B-Instruct.

    Small Llama-3-shaped tokenizer with the 3.1 chat template. Shipped as safetensors shards.
    """
    tok = llama3_tokenizer(instruct=True)
    bos, eot = _ids(tok, "<|begin_of_text|>", "<|eot_id|>")
    config = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=bos,
        eos_token_id=eot,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        **TINY_DIMS,
    )
    model = randomize(LlamaForCausalLM(config), seed)
    return _save(
        out_dir,
        tok,
        config,
        model.state_dict(),
        architectures=["LlamaForCausalLM"],
        fmt=fmt,
        shards=shards,
    )


def build_qwen_math_prm(
    out_dir: Path,
    *,
    seed: int = 0,
    fmt: str = "safetensors",
    shards: int = 2,
    auto_map: bool = True,
) -> Path:
    """Qwen/Qwen2.5-Math-PRM-7B: Qwen2 base (`model.*`) + token-classification head, 2 classes.

    The head is `score = Sequential(Linear(h, h), ReLU(), Linear(h, 2))`, stored as score.0.weight,
    score.0.bias, score.2.weight, score.2.bias; no lm_head. architectures Qwen2ForProcessRewardModel.
    """
    tok = qwen25_tokenizer(bos_token=None, with_step_token=True)
    eot, im_end = _ids(tok, "<|endoftext|>", "<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tok),
        bos_token_id=eot,
        eos_token_id=im_end,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        use_sliding_window=False,
        **TINY_DIMS,
    )
    base = Qwen2Model(config)
    hidden = config.hidden_size
    score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    holder = nn.ModuleDict({"model": base, "score": score})
    randomize(holder, seed)
    return _save(
        out_dir,
        tok,
        config,
        holder.state_dict(),
        architectures=["Qwen2ForProcessRewardModel"],
        auto_map=QWEN_PRM_AUTO_MAP if auto_map else None,
        fmt=fmt,
        shards=shards,
    )


def build_skywork_prm(
    out_dir: Path,
    *,
    seed: int = 0,
    fmt: str = "bin",
    shards: int = 1,
    tie_word_embeddings: bool = True,
) -> Path:
    """Skywork/Skywork-o1-Open-PRM-Qwen-2.5-{1.5B,7B}: Qwen2ForCausalLM + value head.

    Value head `v_head.summary` = Linear(h, 1) (v_head.summary.weight [1, h], v_head.summary.bias
    [1]) beside the causal LM's `model.*` and `lm_head.weight`; one pytorch_model.bin like the real
    ones. tie_word_embeddings True is the 1.5B's config, False the 7B's.
    """
    tok = qwen25_tokenizer(bos_token="<|im_start|>", with_step_token=False)
    eot, im_end = _ids(tok, "<|endoftext|>", "<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tok),
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=eot,
        rope_theta=10000.0,
        tie_word_embeddings=tie_word_embeddings,
        use_sliding_window=False,
        **TINY_DIMS,
    )
    holder = nn.Module()
    holder.lm = Qwen2ForCausalLM(config)
    holder.v_head = nn.Module()
    holder.v_head.summary = nn.Linear(config.hidden_size, 1)
    randomize(holder, seed)
    state = {k.removeprefix("lm."): v for k, v in holder.state_dict().items()}
    return _save(
        out_dir,
        tok,
        config,
        state,
        architectures=["Qwen2ForPrmModel"],
        auto_map=SKYWORK_AUTO_MAP,
        fmt=fmt,
        shards=shards,
    )


def build_er_prm(
    out_dir: Path, *, seed: int = 0, fmt: str = "safetensors", shards: int = 2
) -> Path:
    """The ER-PRM paper's own format: a Llama-3.1-8B (base) causal LM reading ` +`/` -` at ` ки`.

    Its training script subclasses LlamaForCausalLM as CustomLlamaForCausalLM and saves with the HF
    Trainer, so config.json names that class; the weights are plain LlamaForCausalLM ones.
    """
    tok = llama3_tokenizer(instruct=False)
    bos, eos = _ids(tok, "<|begin_of_text|>", "<|end_of_text|>")
    config = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=bos,
        eos_token_id=eos,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        **TINY_DIMS,
    )
    model = randomize(LlamaForCausalLM(config), seed)
    return _save(
        out_dir,
        tok,
        config,
        model.state_dict(),
        architectures=["CustomLlamaForCausalLM"],
        fmt=fmt,
        shards=shards,
    )

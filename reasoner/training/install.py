"""Copy a trained checkpoint into the package as the embedded policy or PRM.

The checkpoint must hold what its slot needs, down to the file its trainer writes last (a
half-written run is refused; trainers refuse configs that train nothing). The files are copied
to a staging directory first and swapped in by renames, so a kill mid-copy leaves the installed
model as it was.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reasoner.models.resolve import embedded_dir
from reasoner.types import ReasonerError

KEEP = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "step_format.json",
    "chat_template.jinja",
    "prm_training.json",  # provenance: config, data checksum, final metrics
    "evidence_prm.json",  # an evidence PRM: its config and head
    "head.safetensors",
)
# what each slot cannot work without
REQUIRED = {
    "policy": ("config.json", "model.safetensors", "tokenizer.json", "step_format.json"),
    "prm": ("evidence_prm.json", "head.safetensors", "prm_training.json"),
    "prm-lm": ("config.json", "model.safetensors", "tokenizer.json", "prm_training.json"),
}


def install_embedded(checkpoint: str | Path, kind: str) -> Path:
    """Replace reasoner/embedded/<kind> with the checkpoint's inference files."""
    src = Path(checkpoint)
    if kind not in REQUIRED:
        raise ReasonerError(f"unknown embedded slot {kind!r}; valid: {', '.join(REQUIRED)}")
    missing = [name for name in REQUIRED[kind] if not (src / name).is_file()]
    if missing:
        raise ReasonerError(
            f"not installing {src} as the embedded {kind}: it lacks {', '.join(missing)} "
            "(not a finished training run's checkpoint)"
        )
    dst = embedded_dir(kind)
    staging = dst.with_name(dst.name + ".installing")
    old = dst.with_name(dst.name + ".old")
    for leftover in (staging, old):  # from an install killed midway
        if leftover.exists():
            shutil.rmtree(leftover)
    staging.mkdir(parents=True)
    for name in KEEP:
        if (src / name).exists():
            shutil.copy2(src / name, staging / name)
    if dst.exists():
        os.replace(dst, old)
    os.replace(staging, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst

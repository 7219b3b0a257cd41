"""Copy a trained checkpoint into the package as the embedded policy or PRM."""

from __future__ import annotations

import shutil
from pathlib import Path

from reasoner.models.resolve import embedded_dir

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


def install_embedded(checkpoint: str | Path, kind: str) -> Path:
    """Replace reasoner/embedded/<kind> with the checkpoint's inference files."""
    src = Path(checkpoint)
    dst = embedded_dir(kind)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in KEEP:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst

"""Write a state dict and config the way real hub checkpoints lay them out on disk.

Sharded or single safetensors (with the `{"format": "pt"}` metadata transformers expects), or
`pytorch_model*.bin` pickles as Math-Shepherd and Skywork ship them, each sharded set with its
`*.index.json` weight map; config.json with the checkpoint's own `architectures` and `auto_map`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PretrainedConfig

WEIGHT_FORMATS = ("safetensors", "bin")


def _shard_names(fmt: str, shards: int) -> list[str]:
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    if shards == 1:
        return [f"{stem}.{ext}"]
    return [f"{stem}-{i:05d}-of-{shards:05d}.{ext}" for i in range(1, shards + 1)]


def write_weights(
    out_dir: Path, state: dict[str, torch.Tensor], *, fmt: str = "safetensors", shards: int = 1
) -> list[Path]:
    """Save `state` (names kept exactly) as `shards` files of format `fmt`; returns the files."""
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"weights format {fmt!r}: expected one of {WEIGHT_FORMATS}")
    if not 1 <= shards <= len(state):
        raise ValueError(f"shards={shards}: expected 1..{len(state)}")
    names = list(state)
    per_shard = -(-len(names) // shards)
    files = _shard_names(fmt, shards)
    weight_map: dict[str, str] = {}
    total = 0
    for index, file_name in enumerate(files):
        chunk = {
            k: state[k].detach().clone().contiguous()
            for k in names[index * per_shard :][:per_shard]
        }
        if fmt == "safetensors":
            save_file(chunk, str(out_dir / file_name), metadata={"format": "pt"})
        else:
            torch.save(chunk, out_dir / file_name)
        weight_map.update(dict.fromkeys(chunk, file_name))
        total += sum(t.numel() * t.element_size() for t in chunk.values())
    if shards > 1:
        index_name = (
            "model.safetensors.index.json"
            if fmt == "safetensors"
            else "pytorch_model.bin.index.json"
        )
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / index_name).write_text(json.dumps(index, indent=2) + "\n")
    return [out_dir / f for f in files]


def write_config(
    out_dir: Path,
    config: PretrainedConfig,
    *,
    architectures: list[str],
    auto_map: dict[str, str] | None = None,
) -> Path:
    """config.json of `config` with the checkpoint's `architectures` (and remote-code `auto_map`)."""
    config.architectures = architectures
    config.save_pretrained(out_dir)
    path = out_dir / "config.json"
    if auto_map is not None:
        data = json.loads(path.read_text())
        data["auto_map"] = auto_map
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def read_weights(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint dir, by name, from safetensors or (weights_only) .bin files."""
    state: dict[str, torch.Tensor] = {}
    for path in sorted(ckpt_dir.glob("*.safetensors")):
        state.update(load_file(str(path)))
    for path in sorted(ckpt_dir.glob("pytorch_model*.bin")):
        state.update(torch.load(path, map_location="cpu", weights_only=True))
    if not state:
        raise FileNotFoundError(f"{ckpt_dir}: no *.safetensors or pytorch_model*.bin weights")
    return state

"""A trainer's run that resumes exactly: its model/optimizer state from out/checkpoint.pt, and its
JSONL log, which after a resume from step s holds the records of steps <= s (those written after
the last checkpoint are dropped; they are logged again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reasoner.jsonl import read_jsonl
from reasoner.models.torch_state import load_module_state, load_torch_state, state_entries


def resume_checkpoint(ckpt: Path, model: Any, optim: Any, hint: str) -> tuple[int, list[float]]:
    """Load `ckpt`'s model and optimizer state into `model`/`optim` when it exists; return the step
    to resume from and the losses since the last log record ((0, []) for a fresh run)."""
    if not ckpt.exists():
        return 0, []
    # tensors and plain values only: no code runs from the file
    state = load_torch_state(ckpt, hint)
    weights, optim_state, start = state_entries(state, ckpt, ("model", "optim", "step"), hint)
    running = list(state.get("running", []))  # the losses since the last log record
    load_module_state(model, weights, ckpt, hint)
    load_module_state(optim, optim_state, ckpt, hint)
    return start, running


def resume_log(path: Path, start: int) -> None:
    """Make `path` what an uninterrupted run had written after `start` steps."""
    if not path.exists():
        return
    if start == 0:
        path.unlink()
        return
    kept = [r for r in read_jsonl(path, "log record") if int(r.get("step", 0)) <= start]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)

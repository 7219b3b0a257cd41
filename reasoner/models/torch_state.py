"""Torch state files (trainer checkpoints, feature caches) read without running code from them.

torch.load unpickles, and a pickle can run any code: a crafted checkpoint.pt in an output or cache
directory would execute on resume. Every state file reasoner writes holds only tensors and plain
values (state dicts, optimizer state, ints, floats, strings, lists, dicts), so it is read with
weights_only=True, which refuses anything else without running it. A file that is refused, or
damaged, is one ReasonerError naming it and saying how to start over.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from reasoner.types import ReasonerError


def load_torch_state(path: Path, restart: str) -> Any:
    """What torch.save wrote at `path`, read with weights_only=True; `restart` (e.g. "delete
    runs/x to restart") ends the error for a refused or damaged file."""
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError as err:
        raise ReasonerError(f"{path}: no such file; {restart}") from err
    except pickle.UnpicklingError as err:
        raise ReasonerError(
            f"{path}: refused: it is not a file of tensors and plain values as this version "
            f"writes them (reading it would run code from it, or it is corrupt: "
            f"{_refusal_detail(err)}); {restart}"
        ) from err
    except Exception as err:  # garbage makes the unpickler raise IndexError, KeyError, ...
        raise ReasonerError(
            f"{path}: truncated or corrupt ({type(err).__name__}: {err or 'empty file'}); {restart}"
        ) from err


# torch's own framing of a weights_only refusal (it suggests weights_only=False: never here)
_FRAMING = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _refusal_detail(err: Exception) -> str:
    """What torch found in a refused file ("unsupported GLOBAL posix.system ..."), without its
    advice to load the file unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith(_FRAMING)]
    return detail[0] if detail else type(err).__name__


def state_entries(state: Any, path: Path, keys: tuple[str, ...], restart: str) -> list[Any]:
    """The values of `keys` in a loaded state dict; a clear error when it is not one of ours."""
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise ReasonerError(
            f"{path}: not a state file of this trainer (expected the entries {', '.join(keys)}); "
            f"{restart}"
        )
    return [state[k] for k in keys]


def load_module_state(module: Any, state: Any, path: Path, restart: str) -> None:
    """module.load_state_dict(state) (a model's or an optimizer's); a state saved for another
    shape (the config changed since it was written) is a clear error."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReasonerError(
            f"{path} does not fit this run (written with another config?): {first}; {restart}"
        ) from err

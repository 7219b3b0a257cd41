"""Reading dataclass configs from TOML files with clear errors for unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from reasoner.types import ReasonerError

T = TypeVar("T")


def config_from_toml(cls: type[T], path: str | Path, **overrides: Any) -> T:
    """An instance of the dataclass `cls` from a TOML file; non-None overrides win."""
    path = Path(path)
    if not path.exists():
        raise ReasonerError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReasonerError(f"{path}: invalid TOML: {err}") from err
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ReasonerError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    return cls(**data)

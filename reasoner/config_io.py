"""The one config loader: a dataclass from a TOML file and/or overrides, every key and type checked.

Every config of the project (bench suites, labeling, policy and PRM training) is a `Config`
dataclass. Building one checks each key against the fields (an unknown key is an error naming the
file, a did-you-mean and the valid keys) and each value against its field's annotation (an error
naming the file, the key, the expected type and the value); then the class's own `validate()`
checks the values. The same checks run when a config is constructed in Python.

Type rules, the same for every config: an int is a fine float (kept as given); a bool is never an
int; a path is a fine string (stored as str); a tuple is a fine list; a single item where a list
belongs is a one-item list (`budgets = 16` means `budgets = [16]`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import tomllib

from reasoner.types import ReasonerError

__all__ = [
    "SET_NONE",
    "Config",
    "ConfigTypeError",
    "build_config",
    "check_keys",
    "check_min",
    "check_types",
    "check_value",
    "describe",
    "did_you_mean",
    "read_toml",
]

C = TypeVar("C", bound="Config")


class _SetNone:
    """The type of SET_NONE."""

    def __repr__(self) -> str:
        return "SET_NONE"


# An override value that sets its key to None: in overrides, None itself means "not given".
SET_NONE: Any = _SetNone()


class ConfigTypeError(ReasonerError):
    """A value that does not match its field's annotation; `key` is the top-level field."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Config:
    """Base of the config dataclasses: construction checks every field's type, then validate()."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The type checks and the value checks (run again by a trainer on a config edited
        after construction, before any work)."""
        check_types(self)
        self.validate()

    def validate(self) -> None:
        """The value checks of this class (ranges, choices): one ReasonerError naming the key."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (what a run records as its config)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(
        cls: type[C],
        data: dict[str, Any],
        source: str = "config",
        overrides: dict[str, Any] | None = None,
    ) -> C:
        """An instance from the keys in `data` (read from `source`) and `overrides` (which win)."""
        return build_config(cls, data, overrides, source)

    @classmethod
    def from_toml(cls: type[C], path: str | Path, overrides: dict[str, Any] | None = None) -> C:
        """An instance from a TOML file of this class's fields, with overrides."""
        return cls.from_dict(read_toml(path), str(path), overrides)


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The table of a TOML file, or one error naming the file (missing, or not valid TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ReasonerError(f"{what} {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is fine
    except OSError as err:
        raise ReasonerError(f"cannot read {what} {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise ReasonerError(
            f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ReasonerError(f"{path}: invalid TOML: {err}") from err


def check_min(
    cfg: Any, key: str, low: float, strict: bool = False, prefix: str = "", finite: bool = True
) -> None:
    """A ReasonerError naming `key` unless cfg.<key> >= low (> low when `strict`), and finite
    unless `finite` is False: for validate(), e.g. check_min(self, "steps", 1)."""
    value = getattr(cfg, key)
    if value is None:
        return
    bad = value <= low if strict else value < low
    if bad or (finite and not math.isfinite(value)):
        need = f"{'>' if strict else '>='} {low}" + (" and finite" if finite else "")
        raise ReasonerError(f"{prefix}{key} must be {need}, got {value!r}")


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_config(
    cls: type[C],
    data: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    source: str = "config",
) -> C:
    """An instance of the Config dataclass `cls` from `data` (read from `source`) and
    `overrides` (an override of None is not given; SET_NONE sets None), every key checked."""
    data = dict(data or {})
    overrides = dict(overrides or {})
    known = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    check_keys(data, known, source)
    check_keys(overrides, known, "overrides")
    origin = dict.fromkeys(data, source)
    for key, value in overrides.items():
        if value is not None:
            data[key] = None if value is SET_NONE else value
            origin[key] = "overrides"
    try:
        return cls(**data)
    except ConfigTypeError as err:
        raise ReasonerError(f"{origin.get(err.key, f'{cls.__name__} defaults')}: {err}") from None


def check_keys(mapping: dict[str, Any], known: typing.Iterable[str], source: str) -> None:
    """An error naming `source`, the unknown keys, a did-you-mean and the valid keys, if any."""
    known = sorted(known)
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ReasonerError(
            f"{source}: unknown key(s) {unknown}{did_you_mean(unknown[0], known)}; "
            f"valid keys: {known}"
        )


# ----------------------------------------------------------------------------------------------
# Type checks from annotations
# ----------------------------------------------------------------------------------------------


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_types(obj: Any) -> None:
    """Check (and normalise, see the module docstring) every field of the dataclass `obj`."""
    for name, annotation in _field_types(type(obj)).items():
        value = getattr(obj, name)
        checked = check_value(value, annotation, name)
        if checked is not value:
            object.__setattr__(obj, name, checked)  # frozen dataclasses too


def check_value(value: Any, annotation: Any, key: str) -> Any:
    """`value` checked against `annotation` (normalised), or a ConfigTypeError naming `key`."""
    ok, out = _match(value, annotation, key)
    if not ok:
        top = key.split(".", 1)[0]
        nan = " (NaN is no value)" if isinstance(value, float) and value != value else ""
        raise ConfigTypeError(
            top,
            f"{key} must be {describe(annotation)} ({_spell(annotation)}), got {value!r}{nan}",
        )
    return out


_UNION_TYPES = (typing.Union, types.UnionType)


def _match(value: Any, ann: Any, key: str) -> tuple[bool, Any]:
    """(True, normalised value) when `value` fits `ann`; nested misfits raise with their path."""
    origin, args = get_origin(ann), get_args(ann)
    if ann is Any:
        return True, value
    if ann is None or ann is type(None):
        return value is None, value
    if origin in _UNION_TYPES:
        for arm in args:
            ok, out = _match_shallow(value, arm, key)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if origin is ClassVar:
        return _match(value, args[0], key)
    if ann is bool:
        return isinstance(value, bool), value
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if ann is float:  # NaN is no setting of anything: refused here, once for every config
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and value == value, value
    if ann is str:
        if isinstance(value, os.PathLike):
            return True, os.fspath(value)
        return isinstance(value, str), value
    if origin is list or ann is list:
        item = args[0] if args else Any
        if isinstance(value, (list, tuple)):  # a misfit item: the whole list is named
            items = [_match(v, item, key) for v in value]
            return all(ok for ok, _ in items), [out for _, out in items]
        if not isinstance(value, dict):  # a single item is a one-item list
            ok, out = _match(value, item, key)
            if ok:
                return True, [out]
        return False, value
    if origin is dict or ann is dict:
        if not isinstance(value, dict):
            return False, value
        key_type, item = args if args else (Any, Any)
        out = {}
        for k, v in value.items():
            check_value(k, key_type, f"{key} key {k!r}")
            out[k] = check_value(v, item, f"{key}.{k}")
        return True, out
    if isinstance(ann, type):
        return isinstance(value, ann), value
    raise TypeError(f"config field {key}: unsupported annotation {ann!r}")


def _match_shallow(value: Any, arm: Any, key: str) -> tuple[bool, Any]:
    """One arm of a union: a nested misfit inside it means "not this arm", not an error."""
    try:
        return _match(value, arm, key)
    except ConfigTypeError:
        return False, value


def describe(ann: Any, plural: bool = False) -> str:
    """An annotation in words: list[int] -> 'a list of ints', int | None -> 'an int or None'."""
    origin, args = get_origin(ann), get_args(ann)
    if origin in _UNION_TYPES:
        return " or ".join(describe(a, plural) for a in args)
    if ann is None or ann is type(None):
        return "None"
    if ann is Any:
        return "anything"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list or ann is list:
        inner = describe(args[0], plural=True) if args else "values"
        return f"{'lists' if plural else 'a list'} of {inner}"
    if origin is dict or ann is dict:
        head = "tables" if plural else "a table"
        if not args or args[1] is Any:
            return head
        return f"{head} of {describe(args[1], plural=True)}"
    words = {bool: ("true or false", "booleans"), int: ("an int", "ints")}
    words |= {float: ("a number", "numbers"), str: ("a string", "strings")}
    if ann in words:
        return words[ann][plural]
    name = getattr(ann, "__name__", str(ann))
    return f"{name}s" if plural else f"a {name}"


def _spell(ann: Any) -> str:
    """An annotation as written in the source: 'list[int]', 'str | dict[str, Any] | None'."""
    origin, args = get_origin(ann), get_args(ann)
    if origin in _UNION_TYPES:
        return " | ".join(_spell(a) for a in args)
    if ann is None or ann is type(None):
        return "None"
    if ann is Any:
        return "Any"
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_spell(a) for a in args)}]"
    return getattr(ann, "__name__", str(ann))

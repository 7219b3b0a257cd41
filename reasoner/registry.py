"""Strategy registry: strategies are found by name through the `reasoner.strategies` entry points.

Built-in strategies are declared as entry points in pyproject.toml like any third party's, so the
core never imports a strategy module by name. When the project runs from a source tree without
being installed, modules of a top-level `strategies` package are scanned as a fallback.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from reasoner.search import Strategy
from reasoner.types import ReasonerError

ENTRY_POINT_GROUP = "reasoner.strategies"
_REGISTRY: dict[str, type[Strategy]] = {}
_discovered = False


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a Strategy subclass available by its `name`."""
    if not cls.name:
        raise ReasonerError(f"{cls.__qualname__} has no `name`")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as err:  # a broken third-party plugin must not break the others
            import warnings

            warnings.warn(f"strategy entry point {ep.name!r} failed to load: {err}", stacklevel=2)
            continue
        _REGISTRY.setdefault(ep.name, cls)
    try:
        package = importlib.import_module("strategies")
    except ImportError:
        return
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"strategies.{info.name}")


def available_strategies() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    _discover()
    if name not in _REGISTRY:
        raise ReasonerError(
            f"unknown strategy {name!r}; available: {', '.join(available_strategies())}"
        )
    return _REGISTRY[name]

"""Strategy registry: strategies are found by name through the `reasoner.strategies` entry points.

Built-in strategies are declared as entry points in pyproject.toml like any third party's, so the
core never imports a strategy module by name. Only when the project runs from a source tree
without being installed (no entry point of its own), the modules of the `strategies` package
beside `reasoner` (never one in the working directory) are scanned as a fallback. The discovery
itself is reasoner.plugins.PluginRegistry, shared with the PRM families.
"""

from __future__ import annotations

import importlib
import pkgutil

from reasoner.plugins import PluginRegistry, import_sibling
from reasoner.search import Strategy
from reasoner.types import ReasonerError

ENTRY_POINT_GROUP = "reasoner.strategies"


def _scan_source_tree(registry: PluginRegistry[type[Strategy]]) -> None:
    """Import every module of the `strategies` package beside `reasoner` (each registers its
    strategy); nothing when there is none."""
    package = import_sibling("strategies")
    if package is None:
        return
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"strategies.{info.name}")


STRATEGIES: PluginRegistry[type[Strategy]] = PluginRegistry(
    ENTRY_POINT_GROUP, "strategy", fallback=_scan_source_tree
)
_REGISTRY = STRATEGIES.entries  # name -> Strategy subclass (tests patch it)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a Strategy subclass available by its `name`."""
    if not cls.name:
        raise ReasonerError(f"{cls.__qualname__} has no `name`")
    return STRATEGIES.register(cls.name, cls)


def available_strategies() -> list[str]:
    """The names of every registered strategy, sorted."""
    return STRATEGIES.names()


def get_strategy(name: str) -> type[Strategy]:
    """The Strategy subclass registered as `name`; an unknown name lists the available ones."""
    return STRATEGIES.get(name)

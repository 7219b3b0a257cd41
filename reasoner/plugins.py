"""Named plugins found through entry points: the one registry behind strategies and PRM families.

A PluginRegistry maps names to plugins of one kind. On first use it loads every entry point of
its group (distribution metadata: `[project.entry-points."GROUP"]` in a pyproject.toml); only
when none of them is this project's own (a source tree that is not installed) it runs its
fallback, so an installed project never scans folders.
Plugins can also be registered in code. A plugin that fails to load (or fails the registry's
check) is skipped with a warning, so one broken third-party package never breaks the others.

This project ships top-level packages beside `reasoner` (`strategies`, `benchmarks`). Their
generic names are often taken by a folder in the user's working directory, which `python -m`,
`python script.py` and notebooks put first on sys.path; `import_sibling` imports the project's
own package from beside `reasoner` whatever sys.path holds.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

from reasoner.types import ReasonerError

T = TypeVar("T")
OWN_DISTRIBUTION = "reasoner"  # the distribution whose entry points name sibling packages
_ROOT = Path(__file__).resolve().parent.parent  # the directory holding the reasoner package


def import_sibling(name: str) -> ModuleType | None:
    """The top-level package `name` that sits beside the `reasoner` package, imported from
    there (not from the working directory); None when there is no such package.

    A different package of that name imported earlier is an error saying so: two packages
    cannot share a top-level name in one process."""
    init = _ROOT / name / "__init__.py"
    if not init.is_file():
        return None
    loaded = sys.modules.get(name)
    if loaded is not None:
        where = getattr(loaded, "__file__", None)
        if where is not None and Path(where).resolve() == init.resolve():
            return loaded
        raise ReasonerError(
            f"another package named {name!r} ({where or loaded}) was imported instead of "
            f"reasoner's own ({init.parent}); rename yours (or leave the directory that holds it)"
        )
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class PluginRegistry(Generic[T]):
    """Plugins of one kind by name, discovered once from the entry-point group `group`.

    kind: what a plugin is, in messages ("strategy", "PRM family"); check(name, plugin) raises
    for a plugin that is not one; fallback(registry) adds plugins after the entry points.
    """

    def __init__(
        self,
        group: str,
        kind: str,
        check: Callable[[str, T], None] | None = None,
        fallback: Callable[[PluginRegistry[T]], None] | None = None,
    ):
        self.group = group
        self.kind = kind
        self.check = check
        self.fallback = fallback
        self.entries: dict[str, T] = {}
        self._discovered = False
        self.own_entry_points = 0  # the project's own entry points the last discovery found
        self._found: set[str] = set()  # names discovery added (dropped again by reset)

    def register(self, name: str, plugin: T) -> T:
        """Make `plugin` available as `name` (replacing one of that name)."""
        if self.check is not None:
            self.check(name, plugin)
        self.entries[name] = plugin
        return plugin

    def add_found(self, name: str, plugin: T) -> None:
        """Add a discovered plugin unless the name is taken (discovery never replaces)."""
        if name not in self.entries:
            self.entries[name] = plugin
            self._found.add(name)

    def discover(self) -> None:
        """Load the group's entry points once; the fallback runs only when none is the
        project's own (it is not installed)."""
        if self._discovered:
            return
        self._discovered = True
        self.own_entry_points = 0
        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            if dist is not None and dist.name == OWN_DISTRIBUTION:
                self.own_entry_points += 1
                try:  # this project's own plugins load from beside reasoner, never from cwd
                    import_sibling(ep.module.partition(".")[0])
                except ReasonerError as err:
                    warnings.warn(f"{self.kind} {ep.name!r} cannot load: {err}", stacklevel=3)
                    continue
            try:
                plugin = ep.load()
                if self.check is not None:
                    self.check(ep.name, plugin)
            except Exception as err:  # a broken third-party plugin must not break the others
                warnings.warn(
                    f"{self.kind} entry point {ep.name!r} failed to load: {err}", stacklevel=3
                )
                continue
            self.add_found(ep.name, plugin)
        if self.fallback is not None and not self.own_entry_points:
            self.fallback(self)

    def reset(self) -> None:
        """Forget what discovery found; the next lookup discovers again (e.g. after a package
        was installed in this process). Plugins registered in code stay."""
        for name in self._found:
            self.entries.pop(name, None)
        self._found.clear()
        self._discovered = False

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self.discover()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The plugin called `name`; an unknown name is an error listing the registered ones."""
        self.discover()
        if name not in self.entries:
            raise ReasonerError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            )
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self.entries

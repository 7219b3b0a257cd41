"""Named plugins found through entry points: the one registry behind strategies and PRM families.

A PluginRegistry maps names to plugins of one kind. On first use it loads every entry point of
its group (distribution metadata: `[project.entry-points."GROUP"]` in a pyproject.toml), then
runs its fallback (e.g. a scan of a source tree that is not installed). Plugins can also be
registered in code. A plugin that fails to load (or fails the registry's check) is skipped with
a warning, so one broken third-party package never breaks the others.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from reasoner.types import ReasonerError

T = TypeVar("T")


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
        """Load the group's entry points and run the fallback, once."""
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=self.group):
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
        if self.fallback is not None:
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

"""Build a policy or a PRM from a spec: load_policy, load_prm and the PRM-family registry.

Policies come in two backends (HF, vLLM). PRMs come in families (reasoner.models.base.PRMFamily
documents the spec syntax): each is found by name through the `reasoner.prms` entry points, so a
new family is one class plus one entry point, with no edit here. reasoner.api re-exports
load_policy and load_prm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasoner.models.base import PRMFamily, check_backend
from reasoner.models.hf_policy import HFPolicy
from reasoner.models.prm_families import BUILTIN_FAMILIES
from reasoner.models.resolve import EMBEDDED_LM_PRM, locate_model_path
from reasoner.models.vllm_policy import VLLMPolicy
from reasoner.plugins import PluginRegistry
from reasoner.types import ReasonerError

PRM_ENTRY_POINT_GROUP = "reasoner.prms"
DEFAULT_PRM_FAMILY = "lm"  # a checkpoint no family's detect() claims: read by its PRMFormat
RESERVED_PRM_SPECS = ("none", "embedded", EMBEDDED_LM_PRM)  # never family names


def _check_family(name: str, family: Any) -> None:
    """A PRM family is a class with a `load` and a `name` equal to its registered name."""
    if not isinstance(family, type) or not callable(getattr(family, "load", None)):
        raise ReasonerError(f"{family!r} is not a PRM family (a class with a load() method)")
    if getattr(family, "name", None) != name:
        raise ReasonerError(
            f"PRM family {family.__qualname__} is named {getattr(family, 'name', None)!r}, "
            f"registered as {name!r}: the two must agree"
        )
    if not name or ":" in name or name in RESERVED_PRM_SPECS:
        raise ReasonerError(f"{name!r} cannot be a PRM family name (empty, ':' or reserved)")


def _add_builtins(registry: PluginRegistry[type[PRMFamily]]) -> None:
    """The built-in families, for a source tree whose entry points are not installed."""
    for family in BUILTIN_FAMILIES:
        registry.add_found(family.name, family)


PRM_FAMILIES: PluginRegistry[type[PRMFamily]] = PluginRegistry(
    PRM_ENTRY_POINT_GROUP, "PRM family", check=_check_family, fallback=_add_builtins
)


def register_prm_family(family: type[PRMFamily]) -> type[PRMFamily]:
    """Class decorator: make a PRM family available by its `name` in this process."""
    return PRM_FAMILIES.register(family.name, family)


def available_prm_families() -> list[str]:
    """The names of every registered PRM family, sorted."""
    return PRM_FAMILIES.names()


def get_prm_family(name: str) -> type[PRMFamily]:
    """The PRM family registered as `name`; an unknown name lists the registered ones."""
    return PRM_FAMILIES.get(name)


def resolve_prm_spec(spec: str | Path) -> tuple[type[PRMFamily], str | None]:
    """The family a PRM spec names and the path it hands that family's load (PRMFamily's
    docstring gives the syntax)."""
    text = str(spec)
    if isinstance(spec, str) and text not in RESERVED_PRM_SPECS:
        name, sep, rest = text.partition(":")
        if name in PRM_FAMILIES:
            family = PRM_FAMILIES.get(name)
            return family, (rest or None) if sep else family.default
    try:
        path = locate_model_path(spec, "prm")
    except ReasonerError as err:
        if not isinstance(spec, str) or text in RESERVED_PRM_SPECS:
            raise
        head, sep, _ = text.partition(":")
        if sep and "/" not in head:
            PRM_FAMILIES.get(head)  # "NAME:PATH" with an unknown NAME: lists the registered ones
        raise ReasonerError(
            f"{err}, and it is no registered PRM family ({', '.join(available_prm_families())})"
        ) from err
    claimed = [PRM_FAMILIES.get(name) for name in available_prm_families()]
    claimed = [family for family in claimed if family.detect(path)]
    if len(claimed) > 1:
        names = ", ".join(family.name for family in claimed)
        raise ReasonerError(
            f"PRM checkpoint {text!r} is claimed by the families {names}: name one "
            f"(e.g. '{claimed[0].name}:{text}')"
        )
    return (claimed[0] if claimed else PRM_FAMILIES.get(DEFAULT_PRM_FAMILY)), text


def prm_checkpoint_dir(spec: str | Path) -> Path | None:
    """The checkpoint directory a PRM spec loads (None: a model-free family, or one without a
    default named alone), e.g. to fingerprint it; a missing path is a clear error."""
    _, path = resolve_prm_spec(spec)
    return locate_model_path(path, "prm") if path else None


def load_policy(spec: Any, backend: str = "hf", step_format: Any = None, **kwargs: Any) -> Any:
    """A policy object from 'embedded', a checkpoint path, or an already-built policy."""
    if spec is None:
        raise ReasonerError("a policy is required: 'embedded' or a checkpoint path")
    if not isinstance(spec, (str, Path)):
        return spec
    if check_backend(backend) == "vllm":
        return VLLMPolicy(spec, step_format=step_format, **kwargs)
    return HFPolicy(spec, step_format=step_format, **kwargs)


def load_prm(spec: Any, backend: str = "hf", step_format: Any = None, **kwargs: Any) -> Any:
    """A PRM object from a PRM spec: 'embedded', 'embedded-lm', a checkpoint path, a family name
    ('equation-checker', 'evidence', 'lm', a plugin's) or 'NAME:PATH', None (no PRM) or a built
    PRM (returned as it is). `step_format` is a preset (a real PRM family's: 'math-shepherd',
    'rlhflow', 'qwen2.5-math-prm', 'skywork-prm', 'er-prm'), a table or a .toml/.json file;
    None: the checkpoint's step_format.json."""
    if spec is None or spec == "none":
        return None
    if not isinstance(spec, (str, Path)):
        return spec
    check_backend(backend)
    family, path = resolve_prm_spec(spec)
    return family.load(path, backend, step_format, **kwargs)

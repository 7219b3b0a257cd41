"""Option checks and tree helpers for strategy authors (nothing here touches a model)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError


def check_int(strategy: str, name: str, value: Any, minimum: int) -> int:
    """An integer option >= minimum, else a ReasonerError naming the strategy and option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReasonerError(
            f"strategy {strategy!r}: option {name!r} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def check_number(
    strategy: str, name: str, value: Any, minimum: float, strict: bool = False
) -> float:
    """A real option >= minimum (> minimum when strict), else a ReasonerError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ReasonerError(
            f"strategy {strategy!r}: option {name!r} must be a number {bound}, got {value!r}"
        )
    return float(value)


def check_choice(strategy: str, name: str, value: Any, choices: Sequence[str]) -> str:
    """An option that must be one of `choices`, else a ReasonerError listing them."""
    if value not in choices:
        raise ReasonerError(
            f"strategy {strategy!r}: unknown {name} {value!r}; valid: {', '.join(choices)}"
        )
    return value


def check_width(strategy: str, width: int, budget: int) -> None:
    """Beam width M must not exceed the budget N (N candidates per round, N // M kept)."""
    if width > budget:
        raise ReasonerError(
            f"strategy {strategy!r}: width M={width} is larger than the budget N={budget}; "
            f"valid: 1 <= width <= budget"
        )


def unique(nodes: Iterable[Node]) -> list[Node]:
    """Nodes in order, each once (an Expand gives back the node itself when nothing was made)."""
    seen: set[int] = set()
    out = []
    for n in nodes:
        if n.id not in seen:
            seen.add(n.id)
            out.append(n)
    return out


def spread(total: int, parts: int) -> list[int]:
    """Split `total` samples over `parts` nodes as evenly as possible (earlier nodes get extras)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def chain_tokens(tree: StepTree, node: Node) -> int:
    """Generated tokens of the chain ending at `node` (the prompt excluded)."""
    return sum(len(n.token_ids) for n in tree.path(node))

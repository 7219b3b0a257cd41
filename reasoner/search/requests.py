"""The requests a strategy yields to the controller, and the Pick it returns.

A strategy never touches a model: it describes the generation or scoring it wants, and the
controller batches the requests of every live search into one policy call and one PRM call.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from reasoner.tree import Node


@dataclass
class Expand:
    """Sample k next steps under each node.

    Result: per node, the list of the k nodes the samples ended at: a new child for each sample,
    or the node itself where a sample generated nothing (the chain then ends there, terminal).
    Identical samples give distinct children; use `unique` to drop repeats of the node itself.
    """

    nodes: list[Node]
    k: int | list[int]
    temperature: float | None = None


@dataclass
class Rollout:
    """Sample k complete continuations under each node; the steps are added to the tree.

    Result: per node, the list of the terminal leaf of each continuation.
    """

    nodes: list[Node]
    k: int | list[int]
    temperature: float | None = None


@dataclass
class Score:
    """PRM scores of the chains ending at these nodes. Result: per node, its chain's step scores.

    Also sets `prm_score` on every node of each chain; scores of known prefixes come from cache.
    """

    nodes: list[Node]


Request = Expand | Rollout | Score


@dataclass
class Pick:
    """A strategy's final choice: the node ending the chosen chain (None if there is none)."""

    node: Node | None
    score: float | None = None
    reason: str = "finished"
    candidates: dict[str, float] = field(default_factory=dict)


Search = Generator[Request, Any, Pick]

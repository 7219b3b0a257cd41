"""Small helpers shared by the tree-search strategies (option checks, ranking, weighted vote).

Nothing here touches a model: only the tree, the search context and the request types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from reasoner.aggregation import answer_key, vote
from reasoner.search import Pick, SearchContext
from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError


# ---- option checks -----------------------------------------------------------------------------
def check_int(strategy: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReasonerError(
            f"strategy {strategy!r}: option {name!r} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def check_number(
    strategy: str, name: str, value: Any, minimum: float, strict: bool = False
) -> float:
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


# ---- tree helpers ------------------------------------------------------------------------------
def unique(nodes: Iterable[Node]) -> list[Node]:
    """Nodes in order, each once (a node can come back twice when a generation was empty)."""
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


def best_scored(ctx: SearchContext, nodes: Sequence[Node]) -> tuple[Node | None, float | None]:
    """The node whose chain has the highest aggregated PRM score (ties: the earliest)."""
    if not nodes:
        return None, None
    scored = [(ctx.chain_score(n), -i) for i, n in enumerate(nodes)]
    score, neg_i = max(scored)
    return nodes[-neg_i], score


def best_per_answer(ctx: SearchContext, nodes: Sequence[Node]) -> dict[str, float]:
    """answer key -> best aggregated chain score among the nodes carrying it."""
    out: dict[str, float] = {}
    for n in nodes:
        key = answer_key(n.answer)
        if key is None:
            continue
        s = ctx.chain_score(n)
        out[key] = max(out.get(key, s), s)
    return out


def weighted_pick(ctx: SearchContext, leaves: Sequence[Node], reason: str = "finished") -> Pick:
    """PRM-weighted vote: each chain votes for its answer with its aggregated score.

    The winning answer is the one with the largest total weight (ties: the answer seen first);
    the chosen node is that answer's best-scored chain. Pick.score is the winner's share of the
    total weight; Pick.candidates maps answer -> total weight.
    """
    weights = [ctx.chain_score(n) for n in leaves]
    totals = vote((n.answer for n in leaves), weights)
    if not totals:
        node, score = best_scored(ctx, leaves)
        return Pick(node=node, score=score, reason="no-answer")
    top = max(totals, key=totals.get)  # insertion order: ties go to the first seen
    members = [i for i, n in enumerate(leaves) if answer_key(n.answer) == top]
    best = max(members, key=lambda i: (weights[i], -i))
    total = sum(totals.values())
    share = totals[top] / total if total > 0 else 1.0 / len(totals)
    return Pick(node=leaves[best], score=share, reason=reason, candidates=totals)

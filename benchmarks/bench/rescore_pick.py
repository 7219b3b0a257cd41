"""A tree search's pick re-made within its saved tree (`reasoner replay`'s "tree-pick" rows),
and the rollout order of a saved best-of-N tree (its "exact" rows)."""

from __future__ import annotations

from typing import Any

from benchmarks.bench.grid import Cell
from benchmarks.config import BenchConfig
from reasoner.controller import is_cut
from reasoner.grading.answers import extract_answer
from reasoner.registry import get_strategy
from reasoner.search import Pick, SearchContext, best_scored, best_scored_pick, weighted_pick
from reasoner.step_format import StepFormat
from reasoner.tree import StepTree
from reasoner.types import Solution, Stats

VOTE_FINALS = ("vote", "weighted")  # a strategy's `final` option values that mean a weighted vote


def rollout_ends(tree: dict[str, Any], budget: int) -> list[int]:
    """The rollout ends of a directly searched best-of-N tree, in sampling order: each rollout
    adds its chain's nodes in order and ends at a terminal, so the non-root terminals in id
    order; an empty rollout (ended at once) leaves no node and is put last."""
    meta = tree["nodes"][0].get("meta") or {}
    if meta.get("rollouts"):
        return list(meta["rollouts"])
    ends = [n["id"] for n in tree["nodes"][1:] if n.get("terminal")]
    return ends + [0] * max(0, budget - len(ends))


def repick(tree: StepTree, cell: Cell, cfg: BenchConfig) -> Pick:
    """The best finished chain of a saved tree under its scores and the cell's aggregation (a
    PRM-weighted vote when the strategy's final pick is a vote); without one, the best leaf."""
    cls = get_strategy(cell.strategy)
    options = {**cls.options, **cfg.strategy_options.get(cell.strategy, {})}
    votes = options.get("final") in VOTE_FINALS or getattr(cls, "weighted", False)
    agg = cell.aggregation if cell.aggregation != "-" else "min"
    ctx = SearchContext(tree=tree, budget=cell.budget, aggregation=agg)
    pool = [
        n
        for n in tree.terminals()
        if n.parent is not None and n.answer is not None and not is_cut(n)
    ]
    if pool:
        return weighted_pick(ctx, pool) if votes else best_scored_pick(ctx, pool, pool)
    node, score = best_scored(ctx, tree.leaves())
    return Pick(node=node, score=score, reason="no-terminal")


def pick_solution(
    tree: StepTree, pick: Pick, fmt: StepFormat | None, strategy: str, pid: str
) -> Solution:
    """A Solution of a re-pick, read off the tree as the controller reads a search's Pick."""
    node = pick.node
    path = tree.path(node) if node is not None else []
    steps = [n.text for n in path]
    answer = node.answer if node is not None else None
    reason = pick.reason
    if is_cut(node):
        reason = "truncated"
    elif node is not None and answer is None and steps and fmt is not None:
        answer = extract_answer(fmt.join_steps(steps))
    return Solution(
        answer=answer,
        steps=steps,
        score=pick.score,
        step_scores=[n.prm_score for n in path if n.prm_score is not None],
        tree=tree,
        stats=Stats(),
        strategy=strategy,
        problem_id=pid,
        reason=reason,
        candidates=pick.candidates,
    )

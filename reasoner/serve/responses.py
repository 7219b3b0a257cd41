"""What a finished search becomes on the wire: choices, usage and the `reasoner` object.

The chosen chain is the first choice's content (its last step holds the answer); `n` > 1 adds
the best chain of each other distinct answer in the tree, best first; `max_tokens` cuts a
choice's content at that many policy tokens (finish_reason "length"; the search is unchanged).
"""

from __future__ import annotations

from typing import Any

from reasoner.aggregation import aggregate, answer_key
from reasoner.tree import Node, StepTree
from reasoner.types import Solution

# why a search stopped -> OpenAI finish_reason: a chain a cap cut, or a search a cap stopped
LENGTH_REASONS = {"truncated", "node-limit", "time-limit"}


def chain_node(tree: StepTree, steps: list[str]) -> Node | None:
    """The node that ends the chain `steps` (a terminal one when there are several)."""
    found = None
    for node in tree.nodes:
        if node.depth == len(steps) and tree.steps(node) == steps:
            if node.terminal:
                return node
            found = found or node
    return found


def other_answers(tree: StepTree, chosen: str | None, aggregation: str, n: int) -> list[Node]:
    """The best chain of each distinct finished answer other than `chosen`, best first (by
    aggregated PRM score when every chain is scored, else by votes), at most n."""
    groups: dict[str, list[Node]] = {}
    for node in tree.terminals():
        key = answer_key(node.answer)
        if key is not None and key != answer_key(chosen):
            groups.setdefault(key, []).append(node)
    if not groups or n < 1:
        return []
    nodes = [m for members in groups.values() for m in members]
    scored = all(p.prm_score is not None for m in nodes for p in tree.path(m))

    def score(node: Node) -> float:
        return aggregate([p.prm_score for p in tree.path(node)], aggregation)

    ranked = []
    for members in groups.values():
        if scored:
            best = max(members, key=score)
            ranked.append(((score(best), len(members)), best))
        else:
            ranked.append(((len(members), 0.0), members[0]))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [node for _, node in ranked[:n]]


def cut_text(policy: Any, tree: StepTree, node: Node | None, text: str, cap: int | None):
    """(content, cut): the chain's text, or its first `cap` policy tokens decoded."""
    if cap is None or node is None:
        return text, False
    ids = [t for n in tree.path(node) for t in n.token_ids]
    if len(ids) <= cap:
        return text, False
    return policy.decode(ids[:cap]), True


def choices(
    policy: Any, solution: Solution, aggregation: str, n: int, cap: int | None
) -> list[tuple[str, str]]:
    """(content, finish_reason) of each choice: the chosen chain, then other answers' best."""
    join = policy.step_format.join_steps
    tree = solution.tree
    finish = "length" if solution.reason in LENGTH_REASONS else "stop"
    if tree is None:
        return [(join(solution.steps), finish)]
    node = chain_node(tree, solution.steps) if solution.steps else None
    text, cut = cut_text(policy, tree, node, join(solution.steps), cap)
    out = [(text, "length" if cut else finish)]
    for other in other_answers(tree, solution.answer, aggregation, n - 1):
        text, cut = cut_text(policy, tree, other, join(tree.steps(other)), cap)
        out.append((text, "length" if cut else "stop"))
    return out


def usage(solution: Solution) -> dict[str, int]:
    """OpenAI usage counting policy tokens: what it prefilled, generated, and both."""
    s = solution.stats
    return {
        "prompt_tokens": s.policy_tokens - s.policy_new_tokens,
        "completion_tokens": s.policy_new_tokens,
        "total_tokens": s.policy_tokens,
    }


def reasoner_object(
    solution: Solution, budget: int, seed: int, job_info: dict[str, Any], return_tree: bool
) -> dict[str, Any]:
    """The search's own account: answer, step scores, costs, and the tree when asked."""
    s = solution.stats
    out = {
        "answer": solution.answer,
        "score": solution.score,
        "reason": solution.reason,
        "strategy": solution.strategy,
        "budget": budget,
        "seed": seed,
        "problem_id": solution.problem_id,
        "steps": list(solution.steps),
        "step_scores": list(solution.step_scores),
        "candidates": dict(solution.candidates),
        "policy_tokens": s.policy_tokens,
        "prm_tokens": s.prm_tokens,
        "flops": s.flops,
        "seconds": s.seconds,
        "wall_seconds": s.wall_seconds,
        "nodes": s.nodes,
        "stats": s.to_dict(),
        **job_info,
    }
    if return_tree and solution.tree is not None:
        out["tree"] = solution.tree.to_dict()
    return out

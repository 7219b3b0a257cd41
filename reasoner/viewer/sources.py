"""The viewer's input: step trees read from what reasoner writes, as compact entries.

An entry is one drawable tree: its nodes as `[parent, text, score, flags, answer, visits]`
(flags: f finished, x truncated or cut, p pruned = a leaf the search left unexpanded, l
lookahead), the chosen chain's node ids, the answer and, for a bench row, the gold answer and
whether it was correct. Sources: a StepTree JSON, a Solution JSON (`solve --json --tree`), a
results.jsonl, or a bench run directory (made with --save-trees).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from reasoner.jsonl import iter_jsonl
from reasoner.tree import Node, StepTree
from reasoner.types import ReasonerError, Solution

RESULTS = "results.jsonl"  # a bench run's rows (benchmarks.bench.resume.RESULTS)


def _flags(node: Node) -> str:
    flags = ""
    if node.terminal and not node.meta.get("cut") and not node.truncated:
        flags += "f"
    if node.meta.get("cut") or node.truncated:
        flags += "x"
    if not node.children and not node.terminal and node.parent is not None:
        flags += "p"
    if node.meta.get("lookahead"):
        flags += "l"
    return flags


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def chosen_path(tree: StepTree, steps: list[str], scores: list[float] | None = None) -> list[int]:
    """The node ids of the chain whose step texts are `steps` (of the matches, the one whose PRM
    scores equal `scores`, then one that ends at a terminal); [] when none matches."""
    if not steps:
        return []
    best: tuple[int, list[int]] | None = None
    stack: list[tuple[int, list[int]]] = [(0, [])]
    while stack:
        node_id, path = stack.pop()
        depth = len(path)
        if depth == len(steps):
            nodes = [tree[i] for i in path]
            rank = sum(
                _close(n.prm_score, s) for n, s in zip(nodes, scores or []) if s is not None
            ) * 2 + int(nodes[-1].terminal)
            if best is None or rank > best[0]:
                best = (rank, path)
            continue
        for child in reversed(tree[node_id].children):
            if tree[child].text == steps[depth]:
                stack.append((child, [*path, child]))
    return best[1] if best else []


def tree_entry(
    tree: StepTree,
    title: str = "",
    steps: list[str] | None = None,
    step_scores: list[float] | None = None,
    answer: str | None = None,
    gold: str | None = None,
    correct: bool | None = None,
    info: str = "",
) -> dict[str, Any]:
    """One drawable tree; `steps` (with their scores) name the chosen chain."""
    nodes = [
        [
            n.parent if n.parent is not None else -1,
            n.text,
            n.prm_score if n.prm_score is None or math.isfinite(n.prm_score) else None,
            _flags(n),
            n.answer,
            n.visits,
        ]
        for n in tree.nodes
    ]
    return {
        "title": title or tree.problem_id or tree.problem_text[:60],
        "problem_id": tree.problem_id,
        "problem": tree.problem_text,
        "answer": answer,
        "gold": gold,
        "correct": correct,
        "info": info,
        "nodes": nodes,
        "chosen": chosen_path(tree, steps or [], step_scores),
    }


def solution_entry(sol: Solution, gold: str | None = None, correct: bool | None = None) -> dict:
    """The entry of a Solution with its tree (`Reasoner.solve`, `solve --json --tree`)."""
    if sol.tree is None:
        raise ReasonerError("view: the Solution holds no tree (write it with --json --tree)")
    s = sol.stats
    info = (
        f"{sol.strategy or 'search'}: {sol.reason}; {s.policy_tokens} policy tokens, "
        f"{s.prm_tokens} PRM tokens, {s.nodes} nodes"
        + (f"; error: {sol.error}" if sol.error else "")
    )
    title = sol.problem_id or sol.tree.problem_text[:60]
    return tree_entry(sol.tree, title, sol.steps, sol.step_scores, sol.answer, gold, correct, info)


def row_entry(row: dict[str, Any]) -> dict[str, Any]:
    """The entry of a bench results row with a saved tree."""
    tree = _tree(row["tree"], f"row {row.get('problem_id')}")
    cell = (
        f"{row.get('strategy')} N={row.get('budget')} prm={Path(str(row.get('prm'))).name} "
        f"agg={row.get('aggregation')} seed={row.get('seed')}"
    )
    info = f"{cell}; {row.get('reason')}; {row.get('policy_tokens')} policy tokens"
    if row.get("replay"):
        info += f"; replayed ({row['replay'].get('kind')}) from {row.get('replayed_from')}"
    return tree_entry(
        tree,
        f"{row.get('problem_id')} | {cell}",
        row.get("steps"),
        row.get("step_scores"),
        row.get("answer"),
        row.get("gold"),
        bool(row.get("correct")),
        info,
    )


def _tree(data: Any, where: str) -> StepTree:
    try:
        return StepTree.from_dict(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise ReasonerError(
            f"view: {where} is not a step tree ({type(err).__name__}: {err})"
        ) from None


def _rows(path: Path, problem: str | None) -> list[dict[str, Any]]:
    rows = [data for _, data in iter_jsonl(path, "result row")]
    latest: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = tuple(r.get(k) for k in ("problem_id", "strategy", "budget", "prm", "aggregation"))
        latest[(*key, r.get("seed"))] = r  # a row written later (a retried error) wins
    rows = list(latest.values())
    ids = list(dict.fromkeys(str(r.get("problem_id")) for r in rows))
    if problem is not None:
        if problem not in ids:
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            raise ReasonerError(
                f"view: problem {problem!r} is not in {path} (its {len(ids)} problems: {shown})"
            )
        rows = [r for r in rows if str(r.get("problem_id")) == problem]
    with_tree = [r for r in rows if r.get("tree")]
    if not with_tree:
        raise ReasonerError(
            f"view: {path} has no saved trees"
            + (f" for problem {problem!r}" if problem else "")
            + "; run bench with --save-trees (or replay with --save-trees)"
        )
    return with_tree


def load_entries(source: str | Path, problem: str | None = None) -> list[dict[str, Any]]:
    """The entries of a run directory, a results.jsonl, a Solution JSON or a StepTree JSON."""
    path = Path(source)
    if path.is_dir():
        if not (path / RESULTS).is_file():
            raise ReasonerError(f"view: {path} is not a bench run directory (no {RESULTS})")
        path = path / RESULTS
    if not path.is_file():
        raise ReasonerError(f"view: {path} does not exist")
    if path.suffix == ".jsonl":
        return [row_entry(r) for r in _rows(path, problem)]
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError) as err:
        raise ReasonerError(f"view: {path} is not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise ReasonerError(f"view: {path} holds no tree (a JSON object was expected)")
    if problem is not None and problem != str(
        data.get("problem_id") or (data.get("tree") or {}).get("problem_id")
    ):
        raise ReasonerError(f"view: {path} holds one tree, not one of problem {problem!r}")
    if "nodes" in data:
        return [tree_entry(_tree(data, str(path)))]
    if "tree" in data:
        if "budget" in data:  # one bench results row
            return [row_entry(data)]
        try:
            sol = Solution.from_dict(data)
        except (KeyError, TypeError) as err:
            raise ReasonerError(f"view: {path} is not a Solution ({err})") from None
        return [solution_entry(sol)]
    raise ReasonerError(
        f"view: {path} holds no tree (expected a StepTree with 'nodes', or a Solution or results "
        "row with 'tree': write one with `reasoner solve --json --tree` or bench --save-trees)"
    )


def default_view_path(source: str | Path) -> Path:
    """Where `reasoner view SOURCE` writes without --out: beside a file, inside a directory."""
    path = Path(source)
    return path / "view.html" if path.is_dir() else path.with_suffix(".html")

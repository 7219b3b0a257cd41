"""`ResultRow`: one graded (problem, cell) result, exactly as a line of results.jsonl stores it.

The JSON keys and values are the results format every run so far has written (`ROW_KEYS`, then
`tree` when trees are saved, then `subsampled_from` for replayed rows, then the `replay*` keys of
rows written by `reasoner replay`), so old results files resume and reports built from them do
not change. Rows are graded here: the gold answer is
used only now, after the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.bench.grid import Cell
from reasoner import grading
from reasoner.aggregation import answer_key
from reasoner.config_io import check_types
from reasoner.types import Problem, Solution

# the keys of every row, in the order they are written; `tree` and `subsampled_from` follow when set
ROW_KEYS = (
    "problem_id",
    "dataset",
    "strategy",
    "budget",
    "prm",
    "aggregation",
    "seed",
    "answer",
    "gold",
    "correct",
    "covered",
    "steps",
    "step_scores",
    "score",
    "policy_tokens",
    "policy_new_tokens",
    "prm_tokens",
    "flops",
    "seconds",
    "wall_seconds",
    "nodes",
    "distinct_tokens",
    "reason",
    "error",
)
# the keys only rows written by `reasoner replay` have, written after `subsampled_from`
REPLAY_KEYS = ("replayed_from", "replay_policy_tokens", "replay")
# keys that rows written by older versions may lack: read with these defaults
_DEFAULTS: dict[str, Any] = {
    "covered": False,
    "policy_new_tokens": 0,
    "wall_seconds": 0.0,
    "nodes": 0,
    "distinct_tokens": 0,
    "reason": "",
    "error": None,
}


@dataclass
class ResultRow:
    """One (problem, cell) result: the cell, the answer and its grade, and what it cost."""

    problem_id: str
    dataset: str
    strategy: str
    budget: int
    prm: str
    aggregation: str
    seed: int
    answer: str | None
    gold: str | None
    correct: bool
    covered: bool  # some finished chain in the tree reached the gold answer
    steps: list[str]
    step_scores: list[float]
    score: float | None
    policy_tokens: int
    policy_new_tokens: int
    prm_tokens: int
    flops: float
    seconds: float  # model time attributed to the problem
    wall_seconds: float
    nodes: int
    distinct_tokens: int
    reason: str  # why the search stopped; an errored row's is "error: <message>"
    error: str | None  # why the problem could not be searched, else None
    tree: dict[str, Any] | None = None  # the serialized StepTree, when trees are saved
    subsampled_from: int | None = None  # the sampling run's budget, for a replayed row
    # rows of `reasoner replay` (benchmarks.bench.rescore_run): the source run directory, the
    # policy tokens the replay itself spent (always 0), and how the row was replayed
    replayed_from: str | None = None
    replay_policy_tokens: int | None = None
    replay: dict[str, Any] | None = None

    @property
    def cell(self) -> Cell:
        return Cell(self.strategy, self.budget, self.prm, self.aggregation, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """The row as results.jsonl stores it (same keys, order and values as ever)."""
        data = {key: getattr(self, key) for key in ROW_KEYS}
        if self.tree is not None:
            data["tree"] = self.tree
        if self.subsampled_from is not None:
            data["subsampled_from"] = self.subsampled_from
        for key in REPLAY_KEYS:
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        """A row read back from results.jsonl; `from_dict(r.to_dict()) == r`. Unknown keys are
        ignored; a missing key that older rows may lack takes its default, any other one raises
        KeyError; a value of the wrong type raises ReasonerError naming the key."""
        values = {key: data[key] if key in data else _DEFAULTS[key] for key in ROW_KEYS}
        replay = {key: data.get(key) for key in REPLAY_KEYS}
        row = cls(
            **values, tree=data.get("tree"), subsampled_from=data.get("subsampled_from"), **replay
        )
        check_types(row)
        return row


def written_reason(sol: Solution) -> str:
    """The stop reason as result and sample rows write it: an error's carries its message
    ("error: <message>"), as every results file so far does."""
    return sol.reason if sol.error is None else f"error: {sol.error}"


def _covered(problem: Problem, sol: Solution) -> bool:
    """Whether any finished chain of the search tree reached the gold answer (coverage)."""
    if sol.tree is None or problem.answer is None:
        return False
    seen: set[str] = set()
    for node in sol.tree.terminals():
        key = answer_key(node.answer)
        if key is None or key in seen:
            continue
        seen.add(key)
        if grading.grade(node.answer, problem.answer):
            return True
    return False


def grade_solution(
    problem: Problem,
    cell: Cell,
    sol: Solution,
    dataset: str,
    save_tree: bool = False,
    subsampled_from: int | None = None,
) -> ResultRow:
    """The graded row of one problem's Solution in one cell (the tree kept when `save_tree`)."""
    correct = bool(
        problem.answer is not None
        and sol.answer is not None
        and grading.grade(sol.answer, problem.answer)
    )
    stats = sol.stats
    return ResultRow(
        problem_id=problem.id,
        dataset=dataset,
        strategy=cell.strategy,
        budget=cell.budget,
        prm=cell.prm,
        aggregation=cell.aggregation,
        seed=cell.seed,
        answer=sol.answer,
        gold=problem.answer,
        correct=correct,
        covered=correct or _covered(problem, sol),
        steps=sol.steps,
        step_scores=sol.step_scores,
        score=sol.score,
        policy_tokens=stats.policy_tokens,
        policy_new_tokens=stats.policy_new_tokens,
        prm_tokens=stats.prm_tokens,
        flops=stats.flops,
        seconds=stats.seconds,
        wall_seconds=stats.wall_seconds,
        nodes=stats.nodes,
        distinct_tokens=stats.distinct_tokens,
        reason=written_reason(sol),
        error=sol.error,
        tree=sol.tree.to_dict() if save_tree and sol.tree is not None else None,
        subsampled_from=subsampled_from,
    )

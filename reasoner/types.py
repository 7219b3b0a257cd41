"""Typed, JSON-serializable problems, solutions and cost statistics shared by every layer."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


class ReasonerError(ValueError):
    """A user-facing error: bad input, bad config or a missing file, with a message naming the cause."""


@dataclass
class Problem:
    """One math problem. `answer` is the gold answer (never shown to a search strategy)."""

    text: str
    id: str = ""
    answer: str | None = None
    reference: str | None = None  # a reference worked solution, when the dataset has one
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ReasonerError(f"problem text must be a string, got {type(self.text).__name__}")
        if not self.text.strip():
            raise ReasonerError("problem text is empty")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ReasonerError(
                f"problem text is not valid Unicode text (a lone surrogate at character "
                f"{err.start})"
            ) from None
        if self.answer is not None and not isinstance(self.answer, str):
            self.answer = str(self.answer)
        self.id = str(self.id)

    def without_answer(self) -> Problem:
        """A copy with only the text and id: what a search may see (metadata can hold solutions)."""
        return Problem(text=self.text, id=self.id)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Stats:
    """What a search cost: model tokens, estimated FLOPs (2 x params x tokens) and wall time."""

    policy_tokens: int = 0  # tokens the policy computed (prefill + generated)
    policy_new_tokens: int = 0  # tokens the policy generated
    prm_tokens: int = 0  # tokens the PRM computed
    flops: float = 0.0
    seconds: float = (
        0.0  # model time attributed to this problem (shared batch calls split by tokens)
    )
    wall_seconds: float = 0.0  # wall time from start to finish of this problem's search
    policy_calls: int = 0
    prm_calls: int = 0
    nodes: int = 0
    distinct_tokens: int = 0  # distinct tokens in the tree (prompt + every step once)

    def add(self, other: Stats) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Solution:
    """The result of a search: the answer, the chosen step chain, its scores, the tree and the costs."""

    answer: str | None
    steps: list[str]
    score: float | None = None
    step_scores: list[float] = field(default_factory=list)
    tree: Any = None  # a reasoner.tree.StepTree (kept untyped here to avoid an import cycle)
    stats: Stats = field(default_factory=Stats)
    strategy: str = ""
    problem_id: str = ""
    reason: str = ""  # why the search stopped, e.g. "finished", "budget", "no-terminal", "error"
    candidates: dict[str, float] = field(default_factory=dict)  # answer -> vote or score
    error: str | None = None  # why the problem could not be searched (then reason is "error")

    @classmethod
    def failed(cls, problem_id: str, strategy: str, error: str) -> Solution:
        """The answerless Solution of a problem that could not be searched, saying why."""
        return cls(
            answer=None,
            steps=[],
            strategy=strategy,
            problem_id=problem_id,
            reason="error",
            error=error,
        )

    def to_dict(self, include_tree: bool = True) -> dict[str, Any]:
        data = {
            "answer": self.answer,
            "steps": list(self.steps),
            "score": self.score,
            "step_scores": list(self.step_scores),
            "stats": self.stats.to_dict(),
            "strategy": self.strategy,
            "problem_id": self.problem_id,
            "reason": self.reason,
            "candidates": dict(self.candidates),
            "error": self.error,
        }
        if include_tree and self.tree is not None:
            data["tree"] = self.tree.to_dict()
        return data

    def to_json(self, include_tree: bool = True) -> str:
        return json.dumps(self.to_dict(include_tree=include_tree))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Solution:
        from reasoner.tree import StepTree

        tree = StepTree.from_dict(data["tree"]) if data.get("tree") else None
        return cls(
            answer=data.get("answer"),
            steps=list(data.get("steps", [])),
            score=data.get("score"),
            step_scores=list(data.get("step_scores", [])),
            tree=tree,
            stats=Stats(**data.get("stats", {})),
            strategy=data.get("strategy", ""),
            problem_id=data.get("problem_id", ""),
            reason=data.get("reason", ""),
            candidates=dict(data.get("candidates", {})),
            error=data.get("error"),
        )

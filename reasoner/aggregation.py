"""Turning step scores into one solution score, and answers into votes."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from reasoner.types import ReasonerError

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": lambda s: min(s),
    "prod": lambda s: math.prod(s),
    "last": lambda s: s[-1],
    "mean": lambda s: sum(s) / len(s),
}


def check_aggregation(name: str) -> str:
    if name not in AGGREGATIONS:
        raise ReasonerError(f"unknown aggregation {name!r}; valid: {sorted(AGGREGATIONS)}")
    return name


def aggregate(step_scores: Sequence[float], how: str = "min") -> float:
    """One score for a chain from its step scores (min is the ER-PRM paper's choice)."""
    check_aggregation(how)
    if not step_scores:
        return 0.0
    return float(AGGREGATIONS[how](list(step_scores)))


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def answer_key(answer: str | None) -> str | None:
    """A canonical key for voting: numbers compare by value ("1,000" = "1000.0"), text by form."""
    if answer is None:
        return None
    text = answer.strip().strip("$").strip().rstrip(".")
    text = text.replace("\\!", "").replace(" ", "")
    plain = text.replace(",", "")
    if _NUMBER.match(plain):
        value = float(plain)
        return str(int(value)) if value.is_integer() else repr(value)
    return text


def vote(answers: Iterable[str | None], weights: Iterable[float] | None = None) -> dict[str, float]:
    """Total weight per answer key (count when no weights); None answers do not vote."""
    totals: dict[str, float] = defaultdict(float)
    answers = list(answers)
    weights = list(weights) if weights is not None else [1.0] * len(answers)
    for ans, w in zip(answers, weights):
        key = answer_key(ans)
        if key is not None:
            totals[key] += w
    return dict(totals)

"""RAFT's selection rules: which of a prompt's k sampled solutions the policy is fine-tuned on.

Each rule reuses the search's own selection (`best_choice`, `majority_choice`). Only `oracle`
sees a gold answer, and only a TRAIN problem's: `select` refuses gold for any other rule, and
RAFT never hands it a test problem. Only chains that reached an answer are kept: a chain cut by a
cap, or one that never answered, teaches nothing a fine-tune should copy.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from reasoner.config_io import did_you_mean
from reasoner.grading import grade
from reasoner.search import best_choice, majority_choice
from reasoner.types import ReasonerError

__all__ = ["SELECTORS", "Chain", "Choice", "check_selector", "select"]

# selector -> what it ranks by (the reward a threshold applies to)
SELECTORS = {
    "prm": "the best aggregated PRM score",
    "orm": "the best outcome score (an ORM's score of the last step)",
    "majority": "a chain of the most voted answer (reward: its vote share)",
    "random": "a uniformly random answered chain (the control)",
    "oracle": "the first chain whose answer equals the TRAIN gold (the ceiling)",
}
SCORED = ("prm", "orm")  # selectors that need a PRM
THRESHOLDED = ("prm", "orm", "majority")  # selectors with a reward a threshold can cut


@dataclass(frozen=True)
class Chain:
    """One sampled solution as a selector sees it: its answer (None: it never answered or was
    cut) and its aggregated PRM score (None when no PRM scored it)."""

    answer: str | None
    score: float | None = None


@dataclass(frozen=True)
class Choice:
    """A selector's verdict on one prompt: the kept chain's index (None: keep nothing), the
    reward it was chosen by (None for random / oracle) and why nothing was kept."""

    index: int | None
    reward: float | None = None
    reason: str = "selected"


def check_selector(name: str, threshold: float | None = None) -> None:
    """One error naming the valid selectors for an unknown name; a threshold only where the
    selector has a reward to compare with it."""
    if name not in SELECTORS:
        raise ReasonerError(
            f"raft: unknown selector {name!r}{did_you_mean(name, SELECTORS)}; "
            f"valid: {', '.join(SELECTORS)}"
        )
    if threshold is not None and name not in THRESHOLDED:
        raise ReasonerError(
            f"raft: threshold applies to the selectors {', '.join(THRESHOLDED)} (they rank by "
            f"a reward); selector {name!r} has none: drop the threshold"
        )


def select(
    name: str,
    chains: Sequence[Chain],
    key: str,
    gold: str | None = None,
    threshold: float | None = None,
) -> Choice:
    """The chain selector `name` keeps among one prompt's `chains`. `key` seeds `random`
    (the prompt's id and round: the same draw on a rerun); `gold` is the TRAIN answer, for
    `oracle` only; `threshold` keeps nothing when the best reward is below it."""
    check_selector(name, threshold)
    if (gold is not None) != (name == "oracle"):
        raise ReasonerError(
            "raft: only the oracle selector takes the gold answer (and it needs one)"
            if gold is not None
            else "raft: the oracle selector needs the train problem's gold answer"
        )
    answered = [i for i, c in enumerate(chains) if c.answer is not None]
    if not answered:
        return Choice(None, reason="no-answer")
    answers = [chains[i].answer for i in answered]
    if name in SCORED:
        scores = [chains[i].score for i in answered]
        if any(s is None for s in scores):
            raise ReasonerError(f"raft: selector {name!r} needs PRM scores on every chain")
        pos = best_choice(answers, scores)  # type: ignore[arg-type]
        choice = Choice(answered[pos], reward=scores[pos])
    elif name == "majority":
        pos, votes = majority_choice(answers)
        assert pos is not None  # every chain here has an answer
        top = max(votes.values())
        choice = Choice(answered[pos], reward=top / len(chains))
    elif name == "random":
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        return Choice(random.Random(seed).choice(answered))
    else:  # oracle
        right = [i for i, a in zip(answered, answers) if grade(a, gold)]
        return Choice(right[0]) if right else Choice(None, reason="none-correct")
    if threshold is not None and choice.reward is not None and choice.reward < threshold:
        return Choice(None, reward=choice.reward, reason="below-threshold")
    return choice

"""Minimal pairs: a step the exact checker accepts vs the same step with one result slipped.

Built from labeled records (reasoner.training.augment makes the slip) and scored by pair
accuracy; shared by prm_minimal_pairs, prm_recipes and implicit_prm_probe.
"""

from __future__ import annotations

from collections.abc import Sequence

from reasoner.training.augment import slip_negatives
from reasoner.training.prm_data import split_by_problem
from reasoner.training.records import LabeledSolution, read_records

Pair = tuple[str, list[str], list[str]]  # (problem, right chain, slipped chain)


def minimal_pairs(records: list[LabeledSolution], n: int, seed: int = 7) -> list[Pair]:
    """Up to n (problem, right chain, slipped chain): a sampled step the checker accepts, after
    its own earlier steps, vs the same chain with that step's equation result slipped."""
    pairs = []
    for copy in slip_negatives(records, 1, seed):
        i = copy.metadata["slip_step"]
        source = next(
            r for r in records if r.problem_id == copy.problem_id and r.steps[:i] == copy.steps[:i]
        )
        pairs.append((copy.problem, source.steps[: i + 1], copy.steps))
    return pairs[:n]


def held_out_pairs(data: str, n: int, seed: int) -> list[Pair]:
    """Minimal pairs from the PRM trainer's validation split of a labels file (its default
    split: 10 % of the problems, seed 0), so no PRM trained on that file saw them."""
    _, val = split_by_problem(read_records(data), 0.1, 0)
    return minimal_pairs(val, n, seed)


def pair_accuracy(right: Sequence[float], wrong: Sequence[float]) -> float:
    """Share of pairs whose right step scores higher (ties count half; 0.5 = chance)."""
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(right, wrong))
    return wins / len(right)

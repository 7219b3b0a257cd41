"""Slip negatives: minimal-pair PRM training data made by corrupting one equation's result.

A PRM fine-tuned only on sampled solutions learns which problems are hard long before it learns to
check a step: the right and wrong solutions of a problem differ in a few digits among many shared
tokens. A slip negative is a copy of a labeled solution cut after one step whose equation result
is changed the way a carry slip changes it (one digit off by one, or the result off by 10); that
step and the copy's end get value 0, the steps before keep their rollout labels. The copy differs
from its source only in that result, so the pair teaches exactly the check the PRM was missing.
Copies are marked `metadata["augmented"] = "slip"` and never replace rollout-labeled data.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from reasoner.synthetic.checker import find_equations
from reasoner.training.records import LabeledSolution

# "= 123" at the end of an equation: the result a slip corrupts
_RESULT = re.compile(r"=\s*(\d+)(?!\d|\.\d)")


def corrupt_number(value: str, rng: random.Random) -> str:
    """A carry-slip-like wrong value: one digit moved by +-1, or the whole number by +-10."""
    n = int(value)
    for _ in range(16):
        if rng.random() < 0.5 and n >= 20:
            out = n + rng.choice((-10, 10))
        else:
            digits = list(value)
            i = rng.randrange(len(digits))
            d = int(digits[i]) + rng.choice((-1, 1))
            if not 0 <= d <= 9 or (i == 0 and d == 0 and len(digits) > 1):
                continue
            digits[i] = str(d)
            out = int("".join(digits))
        if out != n and out >= 0:
            return str(out)
    return str(n + 1)


def slip_step(step: str, rng: random.Random) -> str | None:
    """The step with its first true equation's result corrupted (None: no such equation)."""
    if not any(eq.holds and eq.has_op for eq in find_equations(step)):
        return None
    for match in _RESULT.finditer(step):
        start, end = match.span(1)
        candidate = step[:start] + corrupt_number(match.group(1), rng) + step[end:]
        if any(not eq.holds for eq in find_equations(candidate)):
            return candidate
    return None


def slip_negatives(
    records: list[LabeledSolution], per_record: int, seed: int
) -> list[LabeledSolution]:
    """Up to `per_record` slip copies of each record, at steps before its first known error."""
    rng = random.Random(seed)
    out: list[LabeledSolution] = []
    for r in records:
        last_ok = len(r.steps) if r.first_error in (None, -1) else r.first_error
        candidates = list(range(last_ok))
        rng.shuffle(candidates)
        made = 0
        for i in candidates:
            if made >= per_record:
                break
            bad = slip_step(r.steps[i], rng)
            if bad is None:
                continue
            outcomes = [list(o) for o in r.outcomes[:i]] + [[0.0]]
            out.append(
                replace(
                    r,
                    steps=[*r.steps[:i], bad],
                    outcomes=outcomes,
                    correct=False,
                    first_error=i if r.first_error is not None else None,
                    metadata={**r.metadata, "augmented": "slip", "slip_step": i},
                )
            )
            made += 1
    return out

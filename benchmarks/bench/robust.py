"""Solving a batch so that one failing problem errors alone: its row records the error and the
run goes on (a bad problem, a strategy bug or a model failure must not stop a long run)."""

from __future__ import annotations

from collections.abc import Callable

from reasoner.types import Problem, ReasonerError, Solution


def error_text(err: BaseException) -> str:
    """An error's row text: a ReasonerError's message as it is, else prefixed by its type."""
    return str(err) if isinstance(err, ReasonerError) else f"{type(err).__name__}: {err}"


def solve_robustly(
    solve_batch: Callable[[list[Problem]], list[Solution]], batch: list[Problem], strategy: str
) -> list[Solution]:
    """Solve a batch; if the batch fails, solve one by one so only the failing problem errors
    (its Solution is `Solution.failed`, with the error's text)."""
    try:
        return solve_batch(batch)
    except Exception as err:  # one failing problem must not stop the run
        if len(batch) == 1:
            return [Solution.failed(batch[0].id, strategy, error_text(err))]
    return [solve_robustly(solve_batch, [p], strategy)[0] for p in batch]

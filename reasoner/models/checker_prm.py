"""A model-free PRM for arith-style chains: each step is scored by exact equation checking.

It is problem-blind (it never sees the gold answer or the problem's structure): a step scores 1
when every equation in it is arithmetically true and 0 otherwise, so it catches carry slips but
not logic errors (a distractor used, the wrong quantity combined). It is the "equation checker"
reference verifier: what a search strategy does with a reliable step scorer, at zero FLOPs.
"""

from __future__ import annotations

from reasoner.models.base import ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL
from reasoner.step_format import StepFormat
from reasoner.synthetic.checker import find_equations

CHECKER_SPEC = "equation-checker"  # the name load_prm and the benchmark runner know it by


def step_holds(step: str) -> bool:
    """True when no equation in the step is false (a step without equations holds)."""
    return all(eq.holds for eq in find_equations(step))


class EquationCheckerPRM:
    """ProcessRewardModel interface over `reasoner.synthetic.checker` (no parameters, no tokens)."""

    num_parameters = 0
    max_chains_per_call = DEFAULT_CHAINS_PER_CALL

    def __init__(self, step_format: StepFormat | None = None):
        self.step_format = step_format if isinstance(step_format, StepFormat) else StepFormat()

    def clear_cache(self) -> None:
        """Nothing is cached: present so the controller treats every PRM alike."""

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """1.0 per step whose equations all hold, else 0.0; zero model tokens computed."""
        return [[1.0 if step_holds(s) else 0.0 for s in r.steps] for r in requests], 0

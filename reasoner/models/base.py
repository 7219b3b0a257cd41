"""Backend-neutral interfaces: what the controller asks of a policy and of a PRM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from reasoner.step_format import StepFormat


@dataclass
class GenRequest:
    """Sample `k` continuations of one token prefix: the next step ("step") or to the end ("end")."""

    prefix_ids: list[int]
    k: int
    seed: int
    mode: Literal["step", "end"] = "step"
    temperature: float = 1.0
    max_steps: int | None = None  # for mode "end": how many more steps at most


@dataclass
class StepPiece:
    """One generated step: its text (delimiter stripped), ids as generated, summed logprob."""

    text: str
    token_ids: list[int]
    logprob: float
    truncated: bool = False


@dataclass
class Continuation:
    """One sampled continuation: one step in "step" mode, every remaining step in "end" mode."""

    steps: list[StepPiece] = field(default_factory=list)
    finished: bool = False  # the policy emitted end-of-sequence: the solution is complete
    truncated: bool = False  # a cap (step length or step count) cut it
    new_tokens: int = 0
    prompt_tokens: int = 0  # prefill tokens computed on its behalf (shared prefill: first sample)


class Policy(Protocol):
    """Proposes steps. Every backend batches all requests of one call together."""

    step_format: StepFormat
    num_parameters: int
    max_context: int

    def encode_prompt(self, problem_text: str) -> list[int]: ...

    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]: ...


@dataclass
class ScoreRequest:
    """PRM input: the problem and a step chain. The PRM returns one score per step."""

    problem: str
    steps: list[str]


class ProcessRewardModel(Protocol):
    """Scores step chains, reading every step tag of a chain in one forward pass."""

    step_format: StepFormat
    num_parameters: int

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores per chain, and the number of tokens the PRM computed."""
        ...

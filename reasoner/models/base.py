"""Backend-neutral interfaces: what the controller asks of a policy and of a PRM, and what
load_prm asks of a PRM family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError

BACKENDS = ("hf", "vllm")  # what a policy or an LM PRM can run on


def check_backend(backend: str) -> str:
    """`backend` if it is one of BACKENDS, else an error naming the valid ones."""
    if backend not in BACKENDS:
        raise ReasonerError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    return backend


@dataclass
class GenRequest:
    """Sample `k` continuations of one token prefix: the next step ("step") or to the end ("end").

    Sample j of a request is sample `first_sample + j` of the request's stream, seeded from
    (seed, first_sample + j) on every backend: a request served in parts (k samples cut into
    calls of a few each) samples exactly what it samples whole.
    """

    prefix_ids: list[int]
    k: int
    seed: int
    mode: Literal["step", "end"] = "step"
    temperature: float = 1.0
    max_steps: int | None = None  # for mode "end": how many more steps at most
    first_sample: int = 0  # the stream index of this request's first sample


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
    # prefill tokens computed on its behalf: the prefix's shared prefill is metered on the stream's
    # sample 0 only (a request served in parts counts it once, whatever the parts recompute)
    prompt_tokens: int = 0


class Policy(Protocol):
    """Proposes steps. Every backend batches all requests of one call together."""

    step_format: StepFormat
    num_parameters: int
    max_context: int
    # the most sampled sequences (sum of k) the controller puts in one generate call: what the
    # backend batches efficiently; the controller checks its time and node limits between calls
    max_rows_per_call: int

    def encode_prompt(self, problem_text: str) -> list[int]:
        """The prompt's token ids (StepFormat.encode_prompt with the policy's tokenizer)."""
        ...

    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
        """k continuations per request, in request order, by the shared step rules."""
        ...

    def clear_cache(self) -> None:
        """Forget cached prefix encodings (a no-op where nothing is cached): the controller calls
        it before each run, so a search's metered cost does not depend on earlier ones."""
        ...


@dataclass
class ScoreRequest:
    """PRM input: the problem and a step chain. The PRM returns one score per step."""

    problem: str
    steps: list[str]


class ProcessRewardModel(Protocol):
    """Scores step chains, reading every step tag of a chain in one forward pass."""

    step_format: StepFormat
    num_parameters: int
    # the most chains the controller puts in one score call (limits are checked between calls)
    max_chains_per_call: int

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        """Step scores per chain, and the number of tokens the PRM computed."""
        ...

    def clear_cache(self) -> None:
        """Forget cached prefix encodings (a no-op where nothing is cached), as Policy's."""
        ...


class PRMFamily(ABC):
    """A kind of PRM that `load_prm` builds by name: the extension point for new PRM families.

    A family is a class with a `name` and a `load` classmethod (and optionally `detect`),
    registered as an entry point of the group `reasoner.prms` in its distribution's metadata
    (pyproject.toml: `[project.entry-points."reasoner.prms"]`, `NAME = "module:Class"`; the entry
    point's name must equal the class's `name`), or in-process with
    reasoner.models.loading.register_prm_family. The built-in families (equation-checker,
    evidence, lm) are registered the same way (reasoner.models.prm_families).

    PRM specs (`load_prm(spec, ...)`, `Reasoner(prm=...)`, a suite's `prms`):
    - "NAME": family NAME's default PRM, `load(default, ...)` (its `default` checkpoint spec,
      None when it has none);
    - "NAME:PATH": family NAME's PRM at PATH, `load("PATH", ...)`;
    - "embedded", "embedded-lm" or a checkpoint directory: the family whose `detect(path)` is
      true (an error if several are), else the "lm" family (a causal LM read at step tags);
      `load` gets the spec as written;
    - None or "none": no PRM; a built PRM object: itself.
    Family names win over relative paths: write "./NAME" for a directory named like a family.
    "NAME:..." with an unknown NAME, or a spec that is neither a family nor an existing path, is
    an error that lists the registered families.
    """

    name: ClassVar[str] = ""
    default: ClassVar[str | None] = None  # the checkpoint spec "NAME" alone stands for

    @classmethod
    def detect(cls, path: Path) -> bool:
        """Whether a checkpoint directory is one of this family's (e.g. holds its marker file)."""
        return False

    @classmethod
    @abstractmethod
    def load(
        cls, path: str | None, backend: str, step_format: Any, **options: Any
    ) -> ProcessRewardModel:
        """The PRM at `path` (a checkpoint spec, or None for a family without a default) for
        `backend` ("hf" or "vllm"), with `step_format` (None: the checkpoint's) and the user's
        PRM options."""

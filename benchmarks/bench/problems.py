"""The problems a bench run grades: a slice of a dataset split, and what the report must say
about it (split size, the slice, the files read, problems left out for lack of a gold answer);
and the check, before any search, that the policy can take their prompts at all."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import BenchConfig
from reasoner.datasets import dataset_files, load_dataset
from reasoner.models.base import Policy
from reasoner.types import Problem, ReasonerError


@dataclass
class ProblemSet:
    """The problems a run uses, and what the report must say about where they came from."""

    problems: list[Problem]
    split_total: int  # problems in the whole split
    selected: int  # problems in [offset, offset + limit)
    files: list[Path] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # ids dropped: no gold answer to grade


def load_problems(cfg: BenchConfig) -> ProblemSet:
    """The config's slice [offset, offset + limit) of its split; problems without a gold answer
    are left out (and listed); ids must be unique, since rows are keyed by them."""
    everything = load_dataset(cfg.dataset, cfg.split, data_dir=cfg.data_dir)
    end = None if cfg.limit is None else cfg.offset + cfg.limit
    chosen = everything[cfg.offset : end]
    ids = [p.id for p in chosen]
    if len(set(ids)) != len(ids):
        raise ReasonerError(f"{cfg.dataset} {cfg.split}: problem ids are not unique")
    excluded = [p.id for p in chosen if not p.answer]
    return ProblemSet(
        problems=[p for p in chosen if p.answer],
        split_total=len(everything),
        selected=len(chosen),
        files=[f for f in dataset_files(cfg.dataset, cfg.split, cfg.data_dir) if f.is_file()],
        excluded=excluded,
    )


def check_prompts(policy: Policy, problems: list[Problem]) -> None:
    """Encode every problem's prompt for the policy before the grid runs. When none fits (a
    chat-template format for a tokenizer without one, a context too short for the dataset) that
    is a setting error: one ReasonerError, nothing run. When some do not fit, a warning: their
    rows will record the error."""
    failed: dict[str, str] = {}
    for p in problems:
        try:
            policy.encode_prompt(p.text)
        except ReasonerError as err:
            failed[p.id] = str(err)
    if not failed:
        return
    first_id, first = next(iter(failed.items()))
    if len(failed) == len(problems):
        raise ReasonerError(
            f"the policy cannot take the prompt of any of the {len(problems)} problems to run "
            f"(e.g. {first_id}: {first}); check the policy, its step_format and the dataset"
        )
    print(
        f"warning: {len(failed)} of {len(problems)} problems cannot be searched with this policy "
        f"(e.g. {first_id}: {first}); their rows record the error",
        file=sys.stderr,
    )

"""Rollout labeling: sample solutions, roll out N completions from every step prefix, grade them.

Stores the raw 0/1 outcome of every rollout (records.LabeledSolution), so hard, soft, ER-eta and
ORM labels are all recomputed later without new rollouts. Prefixes are token ids of the sampled
chain (never re-tokenized text). All prefixes of a chunk of problems go to the policy in one
batched call. Results are appended per problem, fsynced: a rerun skips finished problems.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from reasoner.api import load_policy
from reasoner.config_io import Config, check_min
from reasoner.datasets import load_dataset
from reasoner.grading import extract_answer, grade
from reasoner.jsonl import repair_tail
from reasoner.models.base import BACKENDS, GenRequest
from reasoner.models.hf_policy import HFPolicy
from reasoner.models.vllm_policy import VLLMPolicy
from reasoner.scaleout import Executor, LocalExecutor, shard
from reasoner.synthetic import first_error
from reasoner.training.records import LabeledSolution, append_records, iter_records
from reasoner.types import Problem, ReasonerError

POLICY_CLASSES = {"hf": HFPolicy, "vllm": VLLMPolicy}  # per backend: what policy_options build
_SET_BY_CFG = {"model", "step_format"}  # policy keywords LabelConfig sets itself


@dataclass
class LabelConfig(Config):
    """What to label and how (the seed makes the rollouts reproducible)."""

    out: str = "runs/labels/rollouts.jsonl"
    policy: str = "embedded"
    suite: str = "arith"
    split: str = "train"
    data_dir: str | None = None
    offset: int = 0
    problems: int = 1000
    samples: int = 4  # K sampled solutions per problem
    rollouts: int = 8  # N completions per step prefix
    temperature: float = 1.0
    seed: int = 0
    chunk: int = 8  # problems whose rollouts share one batched policy call
    # the policy's step format (a preset such as "chat", a .toml/.json path); None: the
    # checkpoint's own step_format.json
    step_format: str | None = None
    # the policy's backend: "hf" (transformers) or "vllm" (each prefix's rollouts one n-request
    # on its token ids, prefix caching on, a chunk's prefixes in one generate call)
    backend: str = "hf"
    # keywords of the backend's policy (HFPolicy / VLLMPolicy): threads, dtype,
    # gpu_memory_utilization, max_model_len, tensor_parallel_size, ...
    policy_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """At least one problem, sample, rollout and problem per chunk; a finite temperature."""
        for key in ("problems", "samples", "rollouts", "chunk"):
            check_min(self, key, 1)
        check_min(self, "offset", 0)
        check_min(self, "temperature", 0.0)
        if self.backend not in BACKENDS:
            raise ReasonerError(
                f"label: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        valid = sorted(
            set(inspect.signature(POLICY_CLASSES[self.backend]).parameters) - _SET_BY_CFG
        )
        unknown = sorted(set(self.policy_options) - set(valid))
        if unknown:
            raise ReasonerError(
                f"label: policy_options {unknown} are not options of the {self.backend} policy; "
                f"valid: {', '.join(valid)}"
            )


def load_label_policy(cfg: LabelConfig) -> Any:
    """The policy `cfg` labels with: cfg.policy on cfg.backend, in cfg.step_format, built with
    cfg.policy_options (what every executor's worker loads)."""
    return load_policy(
        cfg.policy, backend=cfg.backend, step_format=cfg.step_format, **cfg.policy_options
    )


def _seed(*parts: object) -> int:
    """A stable 32-bit seed from the parts (problem id, sample, step): batch-independent."""
    return zlib.crc32(":".join(map(str, parts)).encode())


def resume_point(out: Path) -> set[str]:
    """The problems a rerun skips: those with records in `out`, except the last one's.

    Records go to the file problem by problem, so only the file's last problem can have been
    cut short (a kill between two of its records). Its lines are removed and it is labeled again
    whole: labeling a problem is deterministic and batch-independent (seeds from its id), so the
    file ends byte for byte as an uninterrupted run's.
    """
    if not out.exists():
        return set()
    repair_tail(out)  # a line torn by a kill mid-write
    spans = list(iter_records(out))
    if not spans:
        return set()
    last = spans[-1][1].problem_id
    keep = len(spans)
    while keep > 0 and spans[keep - 1][1].problem_id == last:
        keep -= 1
    with open(out, "rb+") as fh:
        fh.truncate(spans[keep][0])
        fh.flush()
        os.fsync(fh.fileno())
    return {record.problem_id for _, record in spans[:keep]}


def label_chunk(
    policy: Any, problems: list[Problem], cfg: LabelConfig, exact_checker: Any = None
) -> tuple[list[LabeledSolution], dict[str, float]]:
    """Sample K solutions per problem, roll out N completions per step prefix, grade everything."""
    fmt = policy.step_format
    t0 = time.perf_counter()
    prompts = [policy.encode_prompt(p.text) for p in problems]
    sampled = policy.generate(
        [
            GenRequest(ids, cfg.samples, _seed(cfg.seed, p.id, "sample"), "end", cfg.temperature)
            for p, ids in zip(problems, prompts)
        ]
    )
    new_tokens = sum(c.new_tokens for conts in sampled for c in conts)
    # every proper prefix (after step l, l < H) of every sampled solution gets N rollouts
    requests: list[GenRequest] = []
    owners: list[tuple[int, int, int]] = []  # (problem index, sample index, step index)
    for pi, (prob, conts) in enumerate(zip(problems, sampled)):
        for si, cont in enumerate(conts):
            prefix = list(prompts[pi])
            for li, piece in enumerate(cont.steps[:-1]):
                prefix = prefix + piece.token_ids
                remaining = max(1, fmt.max_steps - li - 1)
                requests.append(
                    GenRequest(
                        prefix,
                        cfg.rollouts,
                        _seed(cfg.seed, prob.id, si, li),
                        "end",
                        cfg.temperature,
                        remaining,
                    )
                )
                owners.append((pi, si, li))
    rolled = policy.generate(requests) if requests else []
    new_tokens += sum(c.new_tokens for conts in rolled for c in conts)
    outcome_map: dict[tuple[int, int, int], list[float]] = {}
    grade_cache: dict[tuple[str, str], bool] = {}

    def is_correct(answer: str | None, gold: str) -> float:
        if answer is None:
            return 0.0
        key = (answer, gold)
        if key not in grade_cache:
            grade_cache[key] = grade(answer, gold)
        return float(grade_cache[key])

    for (pi, si, li), conts in zip(owners, rolled):
        prob = problems[pi]
        head = [p.text for p in sampled[pi][si].steps[: li + 1]]
        outcome_map[(pi, si, li)] = [
            is_correct(
                extract_answer(fmt.join_steps(head + [s.text for s in c.steps])), prob.answer
            )
            if c.finished
            else 0.0
            for c in conts
        ]
    records = []
    for pi, (prob, conts) in enumerate(zip(problems, sampled)):
        for si, cont in enumerate(conts):
            steps = [s.text for s in cont.steps]
            if not steps:
                continue
            text = fmt.join_steps(steps)
            correct = bool(cont.finished and is_correct(extract_answer(text), prob.answer))
            outcomes = [outcome_map[(pi, si, li)] for li in range(len(steps) - 1)] + [
                [float(correct)]
            ]
            first_err = exact_checker(prob, text) if exact_checker is not None else None
            records.append(
                LabeledSolution(
                    problem_id=prob.id,
                    problem=prob.text,
                    gold=prob.answer,
                    steps=steps,
                    outcomes=outcomes,
                    correct=correct,
                    first_error=first_err,
                    metadata={"sample": si, "finished": cont.finished, "truncated": cont.truncated},
                )
            )
    seconds = time.perf_counter() - t0
    return records, {
        "new_tokens": new_tokens,
        "seconds": seconds,
        "rollout_requests": len(requests),
    }


@dataclass
class LabelJob:
    """The labeling shards' job: each worker loads cfg's policy once (or uses `policy`, local
    only) and labels a chunk of problems with `label_chunk`."""

    cfg: LabelConfig
    exact: bool  # grade first errors with the arith checker
    policy: Any = None

    def make_worker(self) -> Callable[[list[Problem]], Any]:
        policy = self.policy if self.policy is not None else load_label_policy(self.cfg)
        checker = first_error if self.exact else None
        return functools.partial(label_chunk, policy, cfg=self.cfg, exact_checker=checker)


def run_labeling(
    cfg: LabelConfig,
    policy: Any = None,
    problems: list[Problem] | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> Path:
    """Label cfg.problems problems (resuming: problems whole in cfg.out are skipped, see
    `resume_point`), so a run killed at any point and rerun writes the uninterrupted run's file.

    Chunks are shards of `executor` (default: this process); on Ray each worker loads the policy
    itself and the records come back in chunk order, so the file is the local run's byte for byte.
    """
    cfg.check()
    executor = executor or LocalExecutor()
    if executor.kind == "local" and policy is None:
        policy = load_label_policy(cfg)
    elif executor.kind != "local" and policy is not None:
        raise ReasonerError(
            "a loaded policy cannot be sent to Ray workers; give cfg.policy (each worker loads it)"
        )
    if problems is None:
        problems = load_dataset(cfg.suite, cfg.split, data_dir=cfg.data_dir)
    problems = problems[cfg.offset : cfg.offset + cfg.problems]
    if any(p.answer is None for p in problems):
        raise ReasonerError("labeling needs gold answers; some problems have none")
    checker = None
    if cfg.suite == "arith" and all("steps" in p.metadata for p in problems):
        checker = first_error
    job = LabelJob(cfg, checker is not None, policy)
    executor.start(job)  # a worker that cannot load its policy fails before cfg.out is touched
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / (out.stem + ".config.json")).write_text(json.dumps(cfg.to_dict(), indent=2))
    done = resume_point(out)
    todo = [p for p in problems if p.id not in done]
    stats_path = out.parent / (out.stem + ".throughput.jsonl")
    bar = tqdm(
        total=len(problems),
        initial=len(problems) - len(todo),
        disable=not progress,
        desc="label",
        unit="problem",
    )
    chunks = shard(todo, cfg.chunk)
    for chunk, ((records, stats), ran) in zip(chunks, executor.map(job, chunks)):
        append_records(out, records)  # all K solutions of these problems, fsynced
        where = {"executor": executor.kind, "worker": ran.worker, "pid": ran.pid}
        with open(stats_path, "a") as fh:
            line = {**stats, "problems": len(chunk), **where, "waited": ran.waited}
            fh.write(json.dumps(line) + "\n")
        bar.update(len(chunk))
        bar.set_postfix(tok_s=f"{stats['new_tokens'] / max(stats['seconds'], 1e-9):.0f}")
    bar.close()
    return out

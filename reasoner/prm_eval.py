"""Step-level PRM evaluation, ProcessBench style: predict the first wrong step of each solution.

A PRM's prediction is the first step whose score falls below a threshold (-1 when none does).
Accuracy is measured separately on erroneous solutions (predicted index must equal the label) and
on correct ones (must predict -1); F1 is their harmonic mean, as in ProcessBench.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.api import load_policy, load_prm
from reasoner.datasets import load_processbench
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.scaleout import Executor, shard
from reasoner.synthetic import first_arithmetic_error, first_error
from reasoner.types import Problem, ReasonerError

SCORE_BATCH = 64  # cases per PRM call (and per scoring shard)
SAMPLE_SHARD = 16  # problems per sampling shard on an executor


@dataclass
class StepCase:
    """A solution with its exact first wrong step (-1: all steps right)."""

    id: str
    problem: str
    steps: list[str]
    label: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem, "steps": self.steps, "label": self.label}


def first_wrong_step(scores: list[float], threshold: float = 0.5) -> int:
    for i, s in enumerate(scores):
        if s < threshold:
            return i
    return -1


def processbench_metrics(predictions: list[int], labels: list[int]) -> dict[str, float]:
    err = [(p, y) for p, y in zip(predictions, labels) if y != -1]
    ok = [(p, y) for p, y in zip(predictions, labels) if y == -1]
    acc_err = sum(p == y for p, y in err) / len(err) if err else 0.0
    acc_ok = sum(p == -1 for p, _ in ok) / len(ok) if ok else 0.0
    f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok > 0 else 0.0
    return {
        "error_accuracy": acc_err,
        "correct_accuracy": acc_ok,
        "f1": f1,
        "n_error": len(err),
        "n_correct": len(ok),
    }


def score_cases(
    prm: Any, cases: list[StepCase], batch: int = SCORE_BATCH
) -> list[list[float] | None]:
    """Step scores per case; None for a case the PRM cannot take (e.g. longer than its context)."""
    out: list[list[float] | None] = []
    for i in range(0, len(cases), batch):
        chunk = cases[i : i + batch]
        try:
            scores, _ = prm.score([ScoreRequest(c.problem, c.steps) for c in chunk])
            out.extend(scores)
        except ReasonerError:
            for c in chunk:
                try:
                    out.append(prm.score([ScoreRequest(c.problem, c.steps)])[0][0])
                except ReasonerError:
                    out.append(None)
    return out


@dataclass
class EvalJob:
    """eval-prm's shards for an executor: the policy samples cases, the PRM scores them. Each
    is a loaded model (local) or a spec that every worker loads on first use (Ray)."""

    policy: Any = None
    prm: Any = None
    samples: int = 4
    seed: int = 0

    def make_worker(self) -> Callable[[tuple[str, list]], list]:
        loaded: dict[str, Any] = {}

        def model(kind: str) -> Any:
            spec = getattr(self, kind)
            if not isinstance(spec, str):
                return spec
            if kind not in loaded:
                loaded[kind] = load_policy(spec) if kind == "policy" else load_prm(spec)
            return loaded[kind]

        def run(shard: tuple[str, list]) -> list:
            kind, items = shard
            if kind == "sample":
                return sample_cases(model("policy"), items, self.samples, self.seed)
            return score_cases(model("prm"), items)

        return run


def evaluate_prm(
    prm: Any,
    cases: list[StepCase],
    threshold: float = 0.5,
    executor: Executor | None = None,
    job: EvalJob | None = None,
) -> dict[str, Any]:
    """Metrics at the given threshold, plus the best threshold on this set (labelled as such).

    Cases the PRM cannot score are left out and counted in `skipped` (with their ids). With an
    `executor`, `job`'s workers score shards of SCORE_BATCH cases (the local batches).
    """
    if executor is None:
        raw = score_cases(prm, cases, SCORE_BATCH)
    else:
        job = job or EvalJob(prm=prm)
        shards = [("score", s) for s in shard(cases, SCORE_BATCH)]
        raw = [s for scores, _ in executor.map(job, shards) for s in scores]
    skipped = [c.id for c, s in zip(cases, raw) if s is None]
    kept = [(c, s) for c, s in zip(cases, raw) if s is not None]
    scores = [s for _, s in kept]
    labels = [c.label for c, _ in kept]
    at = processbench_metrics([first_wrong_step(s, threshold) for s in scores], labels)
    best = max(
        (
            (
                t / 20,
                processbench_metrics([first_wrong_step(s, t / 20) for s in scores], labels)["f1"],
            )
            for t in range(1, 20)
        ),
        key=lambda x: x[1],
    )
    return {
        "threshold": threshold,
        **at,
        "best_threshold_on_this_set": best[0],
        "best_f1_on_this_set": best[1],
        "n": len(kept),
        "skipped": len(skipped),
        "skipped_ids": skipped[:50],
    }


def equation_checker_metrics(cases: list[StepCase]) -> dict[str, Any]:
    """The exact arithmetic checker as a reference 'PRM' (catches slips, not logic errors)."""

    preds = [first_arithmetic_error("\n\n".join(c.steps)) for c in cases]
    return {**processbench_metrics(preds, [c.label for c in cases]), "n": len(cases)}


def arith_cases(
    policy: Any,
    problems: list,
    samples: int = 4,
    seed: int = 0,
    cache: str | Path | None = None,
    executor: Executor | None = None,
    job: EvalJob | None = None,
) -> list[StepCase]:
    """The policy's own sampled solutions on arith problems, labelled by the exact step checker.

    Cached to `cache` (JSONL) so every PRM is evaluated on the very same solutions. With an
    `executor`, `job`'s workers sample shards of SAMPLE_SHARD problems (seeds by problem index).
    """

    if cache and Path(cache).exists():
        return [
            StepCase(**json.loads(line))
            for line in Path(cache).read_text().splitlines()
            if line.strip()
        ]
    indexed = list(enumerate(problems))
    if executor is None:
        cases = sample_cases(policy, indexed, samples, seed)
    else:
        job = job or EvalJob(policy=policy, samples=samples, seed=seed)
        shards = [("sample", s) for s in shard(indexed, SAMPLE_SHARD)]
        cases = [c for part, _ in executor.map(job, shards) for c in part]
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text("".join(json.dumps(c.to_dict()) + "\n" for c in cases))
    return cases


def sample_cases(
    policy: Any, indexed: list[tuple[int, Problem]], samples: int, seed: int
) -> list[StepCase]:
    """`samples` solutions of each (index, problem), seeded by the index, as labelled cases."""
    prompts = [policy.encode_prompt(p.text) for _, p in indexed]
    outs = policy.generate(
        [
            GenRequest(ids, samples, seed * 7919 + i, "end", 1.0)
            for (i, _), ids in zip(indexed, prompts)
        ]
    )
    cases = []
    for (_, p), conts in zip(indexed, outs):
        for j, c in enumerate(conts):
            steps = [s.text for s in c.steps if s.text]
            if not steps:
                continue
            label = first_error(p, "\n\n".join(steps))
            cases.append(StepCase(id=f"{p.id}#{j}", problem=p.text, steps=steps, label=label))
    return cases


def processbench_cases(
    subset: str, data_dir: str | None = None, limit: int | None = None
) -> list[StepCase]:

    return [
        StepCase(id=i.id, problem=i.problem, steps=list(i.steps), label=i.label)
        for i in load_processbench(subset, data_dir=data_dir, limit=limit)
    ]

"""The ER experiment's stored work: one sampling run and every verifier's scores on it.

Samples, PRM step scores and the policy's evidence rows are cached per problem in JSONL files
(reasoner.jsonl: fsynced appends, a torn last line skipped), so a killed run resumes and every
row of the table judges the very same solutions.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from reasoner.api import load_policy, load_prm
from reasoner.grading import extract_answer, grade
from reasoner.jsonl import append_jsonl, read_jsonl
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.models.evidence_prm import (
    CONFIG_FILE,
    EvidenceFeatures,
    is_evidence_prm,
    load_evidence_head,
)
from reasoner.models.token_evidence import FEATURES
from reasoner.types import Problem


def _rows_by_id(path: Path) -> dict[str, dict[str, Any]]:
    """The cached rows of a file, by problem id (a later row replaces an earlier one)."""
    return {row["id"]: row for row in read_jsonl(path)}


def problem_seed(seed: int, problem_id: str) -> int:
    """A problem's sampling seed: fixed by its id, whatever the offset or an earlier resume."""
    return seed * 1_000_003 + zlib.crc32(problem_id.encode())


def sample_solutions(
    problems: list[Problem], max_n: int, seed: int, path: Path, chunk: int = 8
) -> dict[str, dict[str, Any]]:
    """N_max temperature-1 solutions and one greedy solution per problem (cached, resumable)."""
    done = _rows_by_id(path)
    todo = [p for p in problems if p.id not in done]
    if todo:
        policy = load_policy("embedded")
        fmt = policy.step_format
        for start in tqdm(range(0, len(todo), chunk), desc="sample", unit="chunk"):
            part = todo[start : start + chunk]
            prompts = [policy.encode_prompt(p.text) for p in part]
            t0 = time.perf_counter()
            sampled = policy.generate(
                [
                    GenRequest(ids, max_n, problem_seed(seed, p.id), "end", 1.0)
                    for p, ids in zip(part, prompts)
                ]
            )
            greedy = policy.generate([GenRequest(ids, 1, 0, "end", 0.0) for ids in prompts])
            seconds = time.perf_counter() - t0
            rows = []
            for p, conts, [g] in zip(part, sampled, greedy):
                chains = []
                for c in [g, *conts]:
                    steps = [s.text for s in c.steps]
                    answer = extract_answer(fmt.join_steps(steps)) if c.finished else None
                    chains.append(
                        {
                            "steps": steps,
                            "answer": answer,
                            "correct": bool(answer is not None and grade(answer, p.answer)),
                            "tokens": c.new_tokens,
                        }
                    )
                rows.append(
                    {
                        "id": p.id,
                        "greedy": chains[0],
                        "samples": chains[1:],
                        "seconds": seconds / len(part),
                    }
                )
            append_jsonl(path, rows)
            done.update({r["id"]: r for r in rows})
    return {p.id: done[p.id] for p in problems}


def cached_per_sample(
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    path: Path,
    field: str,
    make: Callable[[], Callable[[list[ScoreRequest]], list]],
    desc: str,
    chunk: int,
) -> dict[str, list]:
    """One value per sampled solution of every problem (cached in `path` under `field`,
    resumable). `make()` builds, only when something is left to do, the function mapping a list
    of ScoreRequests to one value each."""
    done = _rows_by_id(path)
    todo = [p for p in problems if p.id not in done]
    if todo:
        compute = make()
        for start in tqdm(range(0, len(todo), chunk), desc=desc, unit="chunk"):
            part = todo[start : start + chunk]
            reqs = [
                ScoreRequest(p.text, chain["steps"] or [""])
                for p in part
                for chain in samples[p.id]["samples"]
            ]
            values = compute(reqs)
            rows, k = [], 0
            for p in part:
                n = len(samples[p.id]["samples"])
                rows.append({"id": p.id, field: values[k : k + n]})
                k += n
            append_jsonl(path, rows)
            done.update({r["id"]: r for r in rows})
    return {p.id: done[p.id][field] for p in problems}


def score_solutions(
    prm_path: Any,
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    path: Path,
    threads: int,
    chunk: int = 8,
) -> dict[str, list[list[float]]]:
    """Step scores of every sampled solution under one PRM (cached, resumable)."""

    def make() -> Callable:
        prm = load_prm(prm_path, threads=threads)
        return lambda reqs: prm.score(reqs)[0]

    return cached_per_sample(problems, samples, path, "scores", make, f"score {path.stem}", chunk)


def evidence_rows_cached(
    problems: list[Problem], samples: dict[str, dict[str, Any]], path: Path, chunk: int = 8
) -> dict[str, list[list[list[float]]]]:
    """The embedded policy's evidence rows (reasoner.models.token_evidence.FEATURES) for every
    step of every sample (cached, resumable): evidence PRMs on the same base differ only in
    their head, so the base runs once for all of them."""

    def make() -> Callable:
        features = EvidenceFeatures("embedded", prefix_cache_mb=0)
        return lambda reqs: features.rows(reqs)[0]

    return cached_per_sample(problems, samples, path, "rows", make, "evidence rows", chunk)


def is_embedded_evidence_prm(path: str) -> bool:
    """Whether `path` is an evidence PRM on the embedded policy (scored from the cached rows)."""
    if not is_evidence_prm(path):
        return False
    return json.loads((Path(path) / CONFIG_FILE).read_text()).get("base") == "embedded"


def head_scores(
    prm_path: str,
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    rows: dict[str, list[list[list[float]]]],
) -> dict[str, list[list[float]]]:
    """Step scores of an evidence PRM on the embedded policy, from cached evidence rows."""
    head, _, columns = load_evidence_head(Path(prm_path))
    out = {}
    with torch.no_grad():
        for p in problems:
            chains = []
            for c, chain in zip(samples[p.id]["samples"], rows[p.id]):
                x = torch.tensor(chain)[:, columns]
                chains.append(torch.sigmoid(head(x)).tolist()[: len(c["steps"])])
            out[p.id] = chains
    return out


def confidence_scores(
    problems: list[Problem],
    samples: dict[str, dict[str, Any]],
    rows: dict[str, list[list[list[float]]]],
    feature: str,
) -> dict[str, list[list[float]]]:
    """An untrained verifier: each step scored by exp(one of the policy's evidence features),
    e.g. "lp_mean" (the step's mean token log-probability: the policy's confidence in it) or
    "gap_min" (the lowest log-probability gap to the policy's favourite token, 0 if none)."""
    k = FEATURES.index(feature)
    return {
        p.id: [
            [math.exp(row[k]) for row in chain][: len(c["steps"])]
            for c, chain in zip(samples[p.id]["samples"], rows[p.id])
        ]
        for p in problems
    }

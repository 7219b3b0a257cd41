"""Grader self-check: does our extraction + equivalence agree with each dataset's own answers?

Checks, all on the real benchmark files:
  1. reference: extract_answer(reference solution) graded against the gold answer
     (GSM8K test vs its "####" answer, MATH500 vs `answer`, MATH test vs `boxed_answer`).
  2. answer-is (MATH500, MATH): the solution with its boxes removed and the Minerva-style line
     "Final Answer: The final answer is $X$. I hope it is correct." appended, so the
     "answer is" extraction path reads every real gold answer.
  2b. GSM8K without "####": the same with the "#### N" line removed, so the last-number
     fallback is what answers (this is how a free-form model answer is read).
  3. reformatted gold: the gold answer rewritten the way a model might write it (units, \\text{},
     \\dfrac, degrees, \\%, \\$, thousands separators, \\left/\\right, decimals for fractions,
     a/b, reordered lists) must still grade equal to the gold, with the variant as prediction
     and (reformatted-reversed) as gold.
  4. perturbed gold: value-changing rewrites (+1, x10, negated, swapped ordered pair) must
     grade unequal.
  5. negative control: each gold answer against another problem's (different) gold answer
     must grade unequal.
Every miss is written out with the extracted answer, the gold answer and a reason; misses we have
looked at carry an explanation from KNOWN_MISSES.

Usage: python -m benchmarks.lab.grading_selfcheck [--data-dir DIR] [--limit N] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.lab.grading_known_misses import KNOWN_MISSES
from benchmarks.lab.grading_variants import perturbed, reformatted, unbox
from reasoner.datasets import (
    dataset_files,
    file_sha256,
    load_dataset,
    load_processbench,
    resolve_data_dir,
)
from reasoner.grading import DEFAULT_TIMEOUT, extract_answer, grade, normalize_answer, numeric_value
from reasoner.step_format import get_step_format
from reasoner.types import Problem

ROOT = Path(__file__).resolve().parents[2]
JOINER = get_step_format(None)  # ProcessBench steps are read as one text, "\n\n"-delimited
Job = dict[str, Any]


def _files(name: str, split: str, data_dir: Path, records: int) -> list[dict[str, Any]]:
    """The local files behind a dataset, with their checksums (for the report)."""
    return [
        {"path": str(p), "sha256": file_sha256(p), "records": records}
        for p in dataset_files(name, split, data_dir)
    ]


def reference_checks(datasets: dict[str, list[Problem]]) -> dict[str, list[Job]]:
    """Checks 1-5 on the datasets' own solutions and gold answers (see the module docstring)."""
    checks: dict[str, list[Job]] = {}
    for name, problems in datasets.items():
        checks[f"{name}/reference"] = [
            {"id": p.id, "pred": extract_answer(p.reference or ""), "gold": p.answer}
            for p in problems
        ]
    for name in ("math500", "math"):
        checks[f"{name}/answer-is"] = [
            {
                "id": p.id,
                "pred": extract_answer(
                    unbox(p.reference or "")
                    + f"\nFinal Answer: The final answer is ${p.answer}$. I hope it is correct."
                ),
                "gold": p.answer,
            }
            for p in datasets[name]
        ]
    checks["gsm8k/no-####"] = [
        {
            "id": p.id,
            "pred": extract_answer(re.sub(r"\n####[^\n]*$", "", p.reference or "")),
            "gold": p.answer,
        }
        for p in datasets["gsm8k"]
    ]
    for name in ("math500", "math"):
        checks[f"{name}/reformatted"] = [
            {"id": p.id, "variant": vname, "pred": variant, "gold": p.answer}
            for p in datasets[name]
            for vname, variant in reformatted(p.answer or "")
        ]
    for name in ("math500", "math"):
        checks[f"{name}/reformatted-reversed"] = [
            {"id": p.id, "variant": vname, "pred": p.answer, "gold": variant}
            for p in datasets[name]
            for vname, variant in reformatted(p.answer or "")
        ]
        checks[f"{name}/perturbed"] = [
            {"id": p.id, "variant": vname, "pred": variant, "gold": p.answer, "expect": False}
            for p in datasets[name]
            for vname, variant in perturbed(p.answer or "")
        ]
    return checks


def processbench_checks(
    datasets: dict[str, list[Problem]], data_dir: Path, limit: int | None, files: dict
) -> dict[str, list[Job]]:
    """Real model outputs: ProcessBench solutions whose problem is a GSM8K / MATH test problem,
    graded against that gold answer; "expect" is ProcessBench's own final_answer_correct label.
    Adds the ProcessBench files to `files`."""
    by_text = {" ".join(p.text.split()): p for name in ("gsm8k", "math") for p in datasets[name]}
    checks = {}
    for subset in ("gsm8k", "math"):
        items = load_processbench(subset, data_dir, limit)
        files[f"processbench-{subset}"] = _files("processbench", subset, data_dir, len(items))
        jobs = []
        for item in items:
            gold = by_text.get(" ".join(item.problem.split()))
            if gold is None:
                continue
            jobs.append(
                {
                    "id": item.id,
                    "gold_id": gold.id,
                    "pred": extract_answer(JOINER.join_steps(item.steps)),
                    "gold": gold.answer,
                    "expect": item.final_answer_correct,
                }
            )
        checks[f"processbench-{subset}/final-answer-agreement"] = jobs
    return checks


def negative_controls(datasets: dict[str, list[Problem]]) -> dict[str, list[Job]]:
    """Each gold answer against another problem's different gold answer (must grade unequal)."""
    rng = random.Random(0)
    checks = {}
    for name, problems in datasets.items():
        jobs = []
        for p in problems:
            other = problems[rng.randrange(len(problems))]
            if normalize_answer(other.answer) == normalize_answer(p.answer):
                continue
            jobs.append(
                {
                    "id": p.id,
                    "other": other.id,
                    "pred": other.answer,
                    "gold": p.answer,
                    "expect": False,
                }
            )
        checks[f"{name}/negative-control"] = jobs
    return checks


def _run(jobs: list[dict], workers: int) -> list[dict]:
    """Grade every job from a thread pool; job["ok"]: the verdict met the expectation."""

    def one(job: dict) -> dict:
        t0 = time.monotonic()
        ok = grade(job["pred"], job["gold"])
        job["ok"] = ok if job.get("expect", True) else not ok
        job["seconds"] = round(time.monotonic() - t0, 4)
        return job

    with ThreadPoolExecutor(max_workers=workers) as pool:  # exercises grading from threads
        return list(pool.map(one, jobs))


def _reason(job: dict) -> str:
    """Why a job missed, in a few words."""
    if job["pred"] is None:
        return "nothing extracted"
    if "gold_id" in job:
        return "graded {} but ProcessBench labels the final answer {}".format(
            *("correct" if x else "wrong" for x in (not job["expect"], job["expect"]))
        )
    if not job.get("expect", True):
        return "false positive: different answers graded equal"
    if job["seconds"] >= DEFAULT_TIMEOUT:
        return "timeout"
    if numeric_value(job["pred"]) is not None and numeric_value(job["gold"]) is not None:
        return "numeric values differ"
    return "not equivalent per math-verify"


def grade_check(check: str, jobs: list[Job], threads: int) -> dict[str, Any]:
    """Grade one check's jobs: counts, rate, timing and every miss with its reason."""
    t0 = time.time()
    done = _run([j for j in jobs if j["pred"] is not None], threads)
    done += [dict(j, ok=not j.get("expect", True), seconds=0.0) for j in jobs if j["pred"] is None]
    misses = []
    for job in done:
        if job["ok"]:
            continue
        miss = {k: job[k] for k in ("id", "other", "variant", "gold_id") if k in job}
        miss.update(extracted=job["pred"], gold=job["gold"], reason=_reason(job))
        key = (check, job["id"] + (f"#{job['variant']}" if "variant" in job else ""))
        miss["explanation"] = KNOWN_MISSES.get(key, "UNEXPLAINED")
        misses.append(miss)
    n = len(jobs)
    return {
        "n": n,
        "correct": n - len(misses),
        "rate": round((n - len(misses)) / n, 6) if n else None,
        "seconds": round(time.time() - t0, 1),
        "max_seconds_per_grade": max((j["seconds"] for j in done), default=0.0),
        "misses": sorted(misses, key=lambda m: m["id"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every check on the real dataset files; write grading_selfcheck.{json,md}."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data directory (default: $REASONER_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="problems per dataset (default: all)"
    )
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir) or ROOT.parent / "shared" / "data"

    t_start = time.time()
    datasets = {
        name: load_dataset(name, "test", data_dir, args.limit)
        for name in ("gsm8k", "math500", "math")
    }
    files = {name: _files(name, "test", data_dir, len(datasets[name])) for name in datasets}
    checks = {
        **reference_checks(datasets),
        **processbench_checks(datasets, data_dir, args.limit, files),
        **negative_controls(datasets),
    }
    results = {}
    for check, jobs in checks.items():
        results[check] = r = grade_check(check, jobs, args.threads)
        print(
            f"{check:28s} {r['correct']:5d}/{r['n']:<5d} {r['rate']}  ({r['seconds']}s)", flush=True
        )

    report = {
        "description": "Grader self-check on reference solutions (see benchmarks/lab/grading_selfcheck.py)",
        "data_dir": str(Path(data_dir).resolve()),
        "files": files,
        "limit": args.limit,
        "timeout_seconds": DEFAULT_TIMEOUT,
        "python": sys.version.split()[0],
        "math_verify": _version("math-verify"),
        "seconds": round(time.time() - t_start, 1),
        "checks": results,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(
        out / "grading_selfcheck.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    )
    _atomic_write(out / "grading_selfcheck.md", markdown(report))
    print(f"wrote {out / 'grading_selfcheck.json'} and .md in {report['seconds']}s")
    return 0


def _version(dist: str) -> str:
    """An installed distribution's version ("unknown" when absent)."""
    try:
        return version(dist)
    except Exception:
        return "unknown"


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a report."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the rates per check, every miss with its reason, the files."""
    lines = [
        "# Grader self-check",
        "",
        "Generated by `python -m benchmarks.lab.grading_selfcheck`; every miss with its reason is in "
        "`grading_selfcheck.json`.",
        "",
        f"Data: `{report['data_dir']}`"
        + (
            f", first {report['limit']} problems per dataset"
            if report["limit"]
            else ", all problems"
        )
        + f"; math-verify {report['math_verify']}, {report['timeout_seconds']} s limit per symbolic grade; "
        f"{report['seconds']} s total.",
        "",
        "| check | graded | agree | rate | misses |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for check, r in report["checks"].items():
        rate = "n/a" if r["rate"] is None else f"{100 * r['rate']:.2f}%"
        lines.append(f"| {check} | {r['n']} | {r['correct']} | {rate} | {len(r['misses'])} |")
    lines += [
        "",
        "How to read this: `*/reference` grades each dataset's own worked solution against its own "
        "answer (for MATH the gold `boxed_answer` was derived from the same last-`\\boxed{}` rule, so "
        "this mostly checks extraction). `*/answer-is` re-reads every MATH gold answer through the "
        '"The final answer is $X$" path. `*/reformatted(-reversed)` and `*/perturbed` are where the '
        "grader's normalization is tested: rewrites that keep the value must grade equal (in both "
        "argument orders), rewrites that change it must not. `gsm8k/no-####` shows what the "
        "last-number fallback alone gets on worked solutions. `processbench-*` grades real model "
        "solutions (ProcessBench items whose problem is a GSM8K/MATH test problem) against the gold "
        "answer and compares with ProcessBench's own `final_answer_correct` label. "
        "`*/negative-control` pairs each gold with another problem's different gold.",
        "",
        "## Misses",
        "",
    ]
    any_miss = False
    for check, r in report["checks"].items():
        for m in r["misses"]:
            any_miss = True
            ident = m["id"] + (f" ({m['variant']})" if "variant" in m else "")
            lines.append(
                f"- **{check}** `{ident}`: extracted `{m['extracted']}` vs gold `{m['gold']}` "
                f"({m['reason']}). {m['explanation']}"
            )
    if not any_miss:
        lines.append("None.")
    lines += ["", "## Files", ""]
    for name, entries in report["files"].items():
        for e in entries:
            lines.append(
                f"- {name}: `{e['path']}` ({e['records']} records, sha256 `{e['sha256'][:16]}...`)"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Grader self-check: does our extraction + equivalence agree with each dataset's own answers?

Checks, all on the real benchmark files:
  1. reference: extract_answer(reference solution) graded against the gold answer
     (GSM8K test vs its "####" answer, MATH500 vs `answer`, MATH test vs `boxed_answer`).
  2. GSM8K without "####": the same with the "#### N" line removed, so the last-number
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

Usage: python benchmarks/grading_selfcheck.py [--data-dir DIR] [--limit N] [--out-dir DIR]
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
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoner import grading  # noqa: E402
from reasoner.datasets import dataset_files, file_sha256, load_dataset  # noqa: E402
from reasoner.grading import extract_answer, grade, normalize_answer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Misses that were investigated by hand: (check, id) -> explanation.
KNOWN_MISSES: dict[tuple[str, str], str] = {}


def _reformat(gold: str) -> list[tuple[str, str]]:
    """Semantics-preserving rewrites of a gold answer, as (name, variant); unchanged ones dropped."""
    out: list[tuple[str, str]] = []

    def add(name: str, variant: str) -> None:
        variant = variant.strip()
        if variant and variant != gold.strip() and all(v != variant for _, v in out):
            out.append((name, variant))

    add("dfrac", gold.replace("\\frac", "\\dfrac"))
    add("no-left-right", gold.replace("\\left", "").replace("\\right", ""))
    # drop spacing but keep row breaks and the ",\\!" thousands marker (its "\\!" is what makes
    # "5,\\!525" a number rather than the list "5, 525")
    add(
        "no-spacing",
        re.sub(r"\\\\|,\\!|\\[!,; ]|\s+", lambda m: m[0] if m[0] in ("\\\\", ",\\!") else "", gold),
    )
    add("unwrap-text", re.sub(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}", r"\1", gold))
    add(
        "drop-text-units",
        re.sub(r"^(.*?\d)\s*(?:\\[!,; ])*\\(?:text|mbox)\{[^{}]*\}(\^\d)?$", r"\1", gold),
    )
    add("drop-degrees", re.sub(r"\^\s*\{?\\circ\}?", "", gold))
    add("drop-percent", gold.replace("\\%", ""))
    add("drop-dollar", gold.replace("\\$", ""))
    add("dollar-sign-prefix", "$" + gold.replace("\\$", "") if gold.startswith("\\$") else gold)
    add("thousands-plain", re.sub(r"(\d),\\!\s*(?=\d{3})|(\d)\{,\}(?=\d{3})", r"\1\2", gold))
    add("inline-math", f"${gold}$")
    add("boxed", f"\\boxed{{{gold}}}")
    # a/b only where no implicit product follows ("3/4\\pi" reads as 3/(4 pi)) and no whole
    # part precedes (a mixed number "1\\frac{4}{5}" is not "14/5")
    add(
        "slash-fraction",
        re.sub(
            r"(?<![\d\s])(\s*)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}(?!\s*[A-Za-z\\(])", r"\1\2/\3", gold
        ),
    )
    add("sqrt-no-braces", re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", gold))
    items = [re.sub(r"^(?:\\text\{\s*and\s*\}|and\b)\s*", "", i) for i in _top_level_split(gold)]
    thousands = re.fullmatch(r"\s*-?\\?\$?\s*\d{1,3}(?:,(?:\\!)?\s*\d{3})+(?:\.\d+)?\s*", gold)
    if len(items) > 1 and not re.match(r"^\s*[\[(]", gold) and not thousands:  # a list of answers
        add("reversed-list", ", ".join(reversed(items)))
    value = grading.numeric_value(gold)
    if value is not None and not value[1]:
        v = value[0]
        if v.denominator != 1 and (10**6 % v.denominator == 0 or v.denominator in (2, 4, 5, 8)):
            add("decimal", _decimal(v))
        if v.denominator == 1:
            add("thousands-commas", f"{v.numerator:,}")
            add("trailing-zero", f"{v.numerator}.0")
    return out


def _perturb(gold: str) -> list[tuple[str, str]]:
    """Rewrites that change the value (expected to grade unequal)."""
    out: list[tuple[str, str]] = []
    value = grading.numeric_value(gold)
    if value is not None:
        v = value[0]
        out.append(("plus-one", _fraction_text(v + 1)))
        if v != 0:
            out.append(("times-ten", _fraction_text(v * 10)))
            out.append(("negated", _fraction_text(-v)))
    m = re.match(r"^\s*(?:\\left)?\(\s*(.*?)\s*(?:\\right)?\)\s*$", gold)
    if m:
        items = _top_level_split(m.group(1))
        if len(items) == 2 and grading.normalize_answer(items[0]) != grading.normalize_answer(
            items[1]
        ):
            out.append(("swapped-pair", f"({items[1]}, {items[0]})"))
    return out


def _fraction_text(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"


def _top_level_split(text: str) -> list[str]:
    """Split on commas outside brackets/braces."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


def _decimal(v: Fraction) -> str:
    text = f"{float(v):.6f}".rstrip("0").rstrip(".")
    return text


def _run(jobs: list[dict], workers: int) -> list[dict]:
    def one(job: dict) -> dict:
        t0 = time.monotonic()
        ok = grade(job["pred"], job["gold"])
        job["ok"] = ok if job.get("expect", True) else not ok
        job["seconds"] = round(time.monotonic() - t0, 4)
        return job

    with ThreadPoolExecutor(max_workers=workers) as pool:  # exercises grading from threads
        return list(pool.map(one, jobs))


def _reason(job: dict) -> str:
    if job["pred"] is None:
        return "nothing extracted"
    if not job.get("expect", True):
        return "false positive: different answers graded equal"
    if job["seconds"] >= grading.DEFAULT_TIMEOUT:
        return "timeout"
    if (
        grading.numeric_value(job["pred"]) is not None
        and grading.numeric_value(job["gold"]) is not None
    ):
        return "numeric values differ"
    return "not equivalent per math-verify"


def main(argv: list[str] | None = None) -> int:
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
    data_dir = (
        args.data_dir or os.environ.get("REASONER_DATA") or str(ROOT.parent / "shared" / "data")
    )

    t_start = time.time()
    datasets = {
        "gsm8k": load_dataset("gsm8k", "test", data_dir, args.limit),
        "math500": load_dataset("math500", "test", data_dir, args.limit),
        "math": load_dataset("math", "test", data_dir, args.limit),
    }
    files = {
        name: [
            {"path": str(p), "sha256": file_sha256(p), "records": len(datasets[name])}
            for p in dataset_files(name, "test", data_dir)
        ]
        for name in datasets
    }

    checks: dict[str, list[dict]] = {}
    for name, problems in datasets.items():
        checks[f"{name}/reference"] = [
            {"id": p.id, "pred": extract_answer(p.reference or ""), "gold": p.answer}
            for p in problems
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
            for vname, variant in _reformat(p.answer or "")
        ]
    for name in ("math500", "math"):
        checks[f"{name}/reformatted-reversed"] = [
            {"id": p.id, "variant": vname, "pred": p.answer, "gold": variant}
            for p in datasets[name]
            for vname, variant in _reformat(p.answer or "")
        ]
        checks[f"{name}/perturbed"] = [
            {"id": p.id, "variant": vname, "pred": variant, "gold": p.answer, "expect": False}
            for p in datasets[name]
            for vname, variant in _perturb(p.answer or "")
        ]
    rng = random.Random(0)
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

    results = {}
    for check, jobs in checks.items():
        t0 = time.time()
        done = _run([j for j in jobs if j["pred"] is not None], args.threads)
        done += [dict(j, ok=False, seconds=0.0) for j in jobs if j["pred"] is None]
        misses = []
        for job in done:
            if job["ok"]:
                continue
            miss = {k: job[k] for k in ("id", "other", "variant") if k in job}
            miss.update(extracted=job["pred"], gold=job["gold"], reason=_reason(job))
            key = (check, job["id"] + (f"#{job['variant']}" if "variant" in job else ""))
            miss["explanation"] = KNOWN_MISSES.get(key, "UNEXPLAINED")
            misses.append(miss)
        n = len(jobs)
        results[check] = {
            "n": n,
            "correct": n - len(misses),
            "rate": round((n - len(misses)) / n, 6) if n else None,
            "seconds": round(time.time() - t0, 1),
            "max_seconds_per_grade": max((j["seconds"] for j in done), default=0.0),
            "misses": sorted(misses, key=lambda m: m["id"]),
        }
        print(
            f"{check:28s} {n - len(misses):5d}/{n:<5d} {results[check]['rate']}  ({results[check]['seconds']}s)",
            flush=True,
        )

    report = {
        "description": "Grader self-check on reference solutions (see benchmarks/grading_selfcheck.py)",
        "data_dir": str(Path(data_dir).resolve()),
        "files": files,
        "limit": args.limit,
        "timeout_seconds": grading.DEFAULT_TIMEOUT,
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
    _atomic_write(out / "grading_selfcheck.md", _markdown(report))
    print(f"wrote {out / 'grading_selfcheck.json'} and .md in {report['seconds']}s")
    return 0


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _markdown(report: dict) -> str:
    lines = [
        "# Grader self-check",
        "",
        "Generated by `python benchmarks/grading_selfcheck.py`; every miss with its reason is in "
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
    lines += ["", "## Misses", ""]
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

"""Side by side: its_hub's beam search and best-of-N (through benchmarks/peer/adapters.py) vs
reasoner's, on the same arith test problems, policy and PRM; wall and CPU seconds, accuracy.

Methods (`--methods`, default all): its_hub-beam/hf-generate, its_hub-beam/engine,
reasoner-beam/solve_batch, reasoner-beam/solve, and the same four for best-of-N (`bon`). Each
method's row is appended to `--out`/rows.jsonl (fsynced) when it finishes; a rerun skips methods
already there (resume), `--report` alone rewrites results.json and results.md from the rows.
Runs in the peer's environment (.venv-peer: its_hub, torch 2.13.0 CPU, reasoner; README.md).

Usage: python -m benchmarks.peer.run [--problems 30] [--budget 16] [--methods ...] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zlib
from pathlib import Path

import torch

from reasoner import Reasoner
from reasoner.api import load_policy, load_prm
from reasoner.grading import grade
from reasoner.grading.answers import extract_answer
from reasoner.models.resolve import embedded_dir
from reasoner.synthetic import load_split

METHODS = [
    f"{tool}-{algo}/{backend}"
    for algo in ("beam", "bon")
    for tool, backend in (
        ("its_hub", "hf-generate"),
        ("its_hub", "engine"),
        ("reasoner", "solve_batch"),
        ("reasoner", "solve"),
    )
]
WIDTH = 4  # beam: 4 beams kept, each expanded 4 ways at N = 16 (its_hub: beam_width 4)


def its_hub_method(algo: str, backend: str, problems: list, budget: int) -> dict:
    """its_hub's BeamSearch / BestOfN over the problems, one at a time (its API is per prompt)."""
    from its_hub.core.algorithms.beam_search import BeamSearch
    from its_hub.core.algorithms.bon import BestOfN
    from its_hub.core.lms.step_generation import StepGeneration

    from benchmarks.peer.adapters import (
        STOP_TOKEN,
        BatchOrchestrator,
        ChainORM,
        ChainPRM,
        EngineLM,
        HFGenerateLM,
    )

    policy = load_policy("embedded")
    prm = ChainPRM(load_prm("embedded"))
    fmt = policy.step_format
    if backend == "hf-generate":
        lm = HFGenerateLM(str(embedded_dir("policy")), fmt, policy.max_context)
    else:
        lm = EngineLM(policy)
    if algo == "beam":
        sg = StepGeneration(
            max_steps=fmt.max_steps,
            step_token=fmt.delimiter,
            stop_token=STOP_TOKEN,
            temperature=1.0,
        )
        algorithm = BeamSearch(sg, prm, beam_width=WIDTH)
    else:
        algorithm = BestOfN(ChainORM(prm), orchestrator=BatchOrchestrator())

    def solve(problem):
        key = problem.id
        if isinstance(lm, EngineLM):
            lm.reset(key)
        torch.manual_seed(zlib.crc32(key.encode()))
        response = algorithm.infer(lm, problem.text, budget)
        return response["content"]

    texts, wall, cpu = clocked(lambda: [solve(p) for p in problems])
    answers = [extract_answer(t) for t in texts]
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "correct": sum(grade(a, p.answer) for a, p in zip(answers, problems)),
        "policy_new_tokens": lm.meter.new_tokens,
        "prm_tokens": prm.tokens,
        "policy_rows": lm.meter.rows,
    }


def reasoner_method(algo: str, backend: str, problems: list, budget: int) -> dict:
    """reasoner's beam / best_of_n: one solve_batch, or one solve per problem."""
    strategy = "beam" if algo == "beam" else "best_of_n"
    options = {"width": WIDTH} if algo == "beam" else {}
    r = Reasoner(strategy=strategy, budget=budget, seed=0, strategy_options=options)
    if backend == "solve_batch":
        sols, wall, cpu = clocked(lambda: r.solve_batch(problems))
    else:
        sols, wall, cpu = clocked(lambda: [r.solve(p) for p in problems])
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "correct": sum(grade(s.answer, p.answer) for s, p in zip(sols, problems)),
        "policy_new_tokens": sum(s.stats.policy_new_tokens for s in sols),
        "prm_tokens": sum(s.stats.prm_tokens for s in sols),
    }


def clocked(fn):
    """fn()'s result, wall seconds and CPU seconds (this process, all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def read_rows(path: Path) -> list[dict]:
    """The rows written so far (a torn last line, from a kill, is dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_row(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def report(out: Path, rows: list[dict]) -> None:
    """results.json (the rows, by method) and results.md (the side-by-side table and ratios)."""
    by = {r["method"]: r for r in rows}
    (out / "results.json").write_text(json.dumps(by, indent=2) + "\n")
    lines = [
        "# its_hub vs reasoner (embedded policy and PRM, arith test problems)",
        "",
        "| method | problems | accuracy | wall s | CPU s | policy new tok | PRM tok | load before |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in METHODS:
        if m not in by:
            continue
        r = by[m]
        lines.append(
            f"| {m} | {r['problems']} | {100 * r['correct'] / r['problems']:.0f} % | "
            f"{r['wall_seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['policy_new_tokens']} | "
            f"{r['prm_tokens']} | {r['load']} |"
        )
    lines += ["", "Speed (wall, its_hub / reasoner):", ""]
    for algo in ("beam", "bon"):
        ours = by.get(f"reasoner-{algo}/solve_batch")
        for peer in ("hf-generate", "engine"):
            theirs = by.get(f"its_hub-{algo}/{peer}")
            if ours and theirs:
                lines.append(
                    f"- {algo}: its_hub on {peer} / reasoner solve_batch = "
                    f"{theirs['wall_seconds'] / ours['wall_seconds']:.2f}x wall, "
                    f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}x CPU"
                )
        single = by.get(f"reasoner-{algo}/solve")
        theirs = by.get(f"its_hub-{algo}/engine")
        if single and theirs:
            lines.append(
                f"- {algo}: its_hub on engine / reasoner solve (one problem at a time) = "
                f"{theirs['wall_seconds'] / single['wall_seconds']:.2f}x wall"
            )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/peer/results")
    ap.add_argument("--report", action="store_true", help="only rewrite the report from the rows")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    if not args.report:
        torch.set_num_threads(args.threads)
        problems = load_split("test")[: args.problems]
        done = {r["method"] for r in read_rows(rows_path)}
        for method in args.methods:
            if method in done:
                print(f"{method}: done (in {rows_path}), skipped")
                continue
            tool_algo, backend = method.split("/")
            tool, algo = tool_algo.split("-")
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            run = its_hub_method if tool == "its_hub" else reasoner_method
            row = run(algo, backend, problems, args.budget)
            row.update(
                method=method,
                problems=len(problems),
                budget=args.budget,
                threads=args.threads,
                load=load,
                machine=platform.platform(),
            )
            append_row(rows_path, row)
            print(json.dumps(row))
    report(out, read_rows(rows_path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

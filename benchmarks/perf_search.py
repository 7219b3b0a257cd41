"""Search efficiency on the embedded models: batching speed-up and redundancy of model compute.
1. Batching: the same arith problems searched with `beam` (N=16) through one `solve_batch` call
   versus one `solve` call each; same seeds, so the results must match. Wall seconds and ratio.
2. Redundancy (beam and MCTS at N=16): tokens each model computed divided by the distinct tokens
   of the tree (policy: prompt + every step once; PRM: prompt + every scored step and tag once).
3. Batching ceiling: first-step generation for one problem's N rows per call versus all problems'
   rows in one call, and PRM scoring likewise; the throughput ratio bounds what lockstep batching
   can gain on this machine (a compute-bound model gains little from bigger batches).

Usage: python -m benchmarks.perf_search [--problems 32] [--prm embedded] [--out benchmarks/results]
Writes perf_search.json and perf_search.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from statistics import median

import torch

from reasoner import Reasoner
from reasoner.api import load_policy, load_prm
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.synthetic import load_split


def prm_input_ids(prm, problem: str, steps: list[str]) -> list[int]:
    """The token ids the PRM encodes for a chain: a tag-read LM PRM's input, or an evidence
    PRM's policy-side chain (for no steps: the prompt)."""
    if hasattr(prm, "builder"):
        return prm.builder.build(problem, steps)[0]

    ids, spans = prm.features.layout(ScoreRequest(problem, steps or [""]))
    return ids if steps else ids[: spans[0][0]]


def prm_distinct_tokens(prm, tree) -> int:
    """PRM input tokens if every scored node were encoded exactly once."""
    total = 0
    prompt = len(prm_input_ids(prm, tree.problem_text, []))
    prompt_counted = False
    for node in tree.nodes[1:]:
        if node.prm_score is None:
            continue
        steps = tree.steps(node)
        ids = prm_input_ids(prm, tree.problem_text, steps)
        parent = prm_input_ids(prm, tree.problem_text, steps[:-1]) if len(steps) > 1 else []
        if not prompt_counted:
            total += prompt
            prompt_counted = True
        total += len(ids) - (len(parent) if parent else prompt)
    return total


def batching_ceiling(policy, prm, problems, n: int) -> dict:
    """Tokens/s of one call per problem (N rows) vs one call for all problems (N x P rows)."""

    prompts = [policy.encode_prompt(p.text) for p in problems]

    def gen(batch):
        t0 = time.perf_counter()
        outs = policy.generate([GenRequest(ids, n, 7 + i, "step", 1.0) for i, ids in batch])
        tokens = sum(c.new_tokens for out in outs for c in out)
        return outs, tokens, time.perf_counter() - t0

    policy.clear_cache()
    gen(list(enumerate(prompts[:2])))  # warm-up
    single = [gen([(i, ids)]) for i, ids in enumerate(prompts)]
    t_single = sum(s[2] for s in single)
    tok_single = sum(s[1] for s in single)
    outs, tok_all, t_all = gen(list(enumerate(prompts)))
    chains = [
        ScoreRequest(p.text, [c.steps[0].text if c.steps else ""])
        for p, out in zip(problems, outs)
        for c in out
    ]
    prm.clear_cache()
    t0 = time.perf_counter()
    prm_single = 0
    for k in range(len(problems)):
        prm.clear_cache()
        prm_single += prm.score(chains[k * n : (k + 1) * n])[1]
    t_prm_single = time.perf_counter() - t0
    prm.clear_cache()
    t0 = time.perf_counter()
    prm_all = prm.score(chains)[1]
    t_prm_all = time.perf_counter() - t0
    return {
        "rows_per_call": [n, n * len(problems)],
        "policy_tok_s": [tok_single / t_single, tok_all / t_all],
        "policy_ratio": (tok_all / t_all) / (tok_single / t_single),
        "prm_tok_s": [prm_single / t_prm_single, prm_all / t_prm_all],
        "prm_ratio": (prm_all / t_prm_all) / (prm_single / t_prm_single),
    }


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--policy", default="embedded")
    ap.add_argument("--prm", default="embedded")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    problems = load_split("test")[: args.problems]
    report: dict = {
        "problems": len(problems),
        "budget": args.budget,
        "policy": args.policy,
        "prm": args.prm,
        "machine": platform.platform(),
    }

    def fresh(strategy: str, **kw):  # new model objects: no KV entries carried between runs
        return Reasoner(
            strategy=strategy,
            budget=args.budget,
            policy=load_policy(args.policy),
            prm=load_prm(args.prm),
            seed=0,
            **kw,
        )

    # 1. batching
    t0 = time.perf_counter()
    batched = fresh("beam").solve_batch(problems)
    t_batch = time.perf_counter() - t0
    r = fresh("beam")
    t0 = time.perf_counter()
    sequential = [r.solve(p) for p in problems]
    t_seq = time.perf_counter() - t0
    same = sum(a.steps == b.steps and a.answer == b.answer for a, b in zip(batched, sequential))
    report["batching"] = {
        "strategy": "beam",
        "solve_batch_seconds": t_batch,
        "sequential_seconds": t_seq,
        "speedup": t_seq / t_batch,
        "identical_solutions": same,
        "policy_calls_batch": sum(s.stats.policy_calls for s in batched) / len(batched),
    }
    # 2. redundancy
    report["redundancy"] = {}
    for strategy in ("beam", "mcts"):
        reasoner = fresh(strategy)
        sols = reasoner.solve_batch(problems)
        pol = [s.stats.policy_tokens / s.stats.distinct_tokens for s in sols]
        prm = [s.stats.prm_tokens / max(1, prm_distinct_tokens(reasoner.prm, s.tree)) for s in sols]
        report["redundancy"][strategy] = {
            "policy_median": median(pol),
            "policy_mean": sum(pol) / len(pol),
            "prm_median": median(prm),
            "prm_mean": sum(prm) / len(prm),
            "policy_tokens_mean": sum(s.stats.policy_tokens for s in sols) / len(sols),
            "prm_tokens_mean": sum(s.stats.prm_tokens for s in sols) / len(sols),
        }
    # 3. batching ceiling
    report["ceiling"] = batching_ceiling(
        load_policy(args.policy), load_prm(args.prm), problems, args.budget
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf_search.json").write_text(json.dumps(report, indent=2))
    b = report["batching"]
    lines = [
        "# Search efficiency (embedded models, arith test split)",
        "",
        f"Command: `python -m benchmarks.perf_search --problems {args.problems} --budget {args.budget} --prm {args.prm}`",
        "",
        f"Batching ({len(problems)} problems, beam N={args.budget}): solve_batch {b['solve_batch_seconds']:.1f} s, "
        f"sequential solve {b['sequential_seconds']:.1f} s, speed-up {b['speedup']:.2f}x; "
        f"{b['identical_solutions']}/{len(problems)} identical solutions.",
        "",
        "| strategy | policy redundancy (median / mean) | PRM redundancy (median / mean) | policy tok | PRM tok |",
        "|---|---|---|---:|---:|",
    ]
    for name, v in report["redundancy"].items():
        lines.append(
            f"| {name} | {v['policy_median']:.2f} / {v['policy_mean']:.2f} | {v['prm_median']:.2f} / {v['prm_mean']:.2f} "
            f"| {v['policy_tokens_mean']:.0f} | {v['prm_tokens_mean']:.0f} |"
        )
    c = report["ceiling"]
    lines += [
        "",
        f"Batching ceiling (first step of {len(problems)} problems): {c['rows_per_call'][0]} rows per "
        f"call vs {c['rows_per_call'][1]}: policy {c['policy_tok_s'][0]:.0f} vs "
        f"{c['policy_tok_s'][1]:.0f} new tok/s ({c['policy_ratio']:.2f}x); PRM "
        f"{c['prm_tok_s'][0]:.0f} vs {c['prm_tok_s'][1]:.0f} tok/s ({c['prm_ratio']:.2f}x).",
    ]
    (out / "perf_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

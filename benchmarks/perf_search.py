"""Search efficiency on the embedded models: batching, redundancy, and search vs raw throughput.

1. Batching: the same arith problems searched with `beam` (N=16) through one `solve_batch` call
   versus one `solve` call each; same seeds, so the results must match. Wall and CPU seconds.
2. Redundancy (beam and MCTS at N=16): tokens each model computed divided by the distinct tokens
   of the tree (policy: prompt + every step once; PRM: prompt + every scored step and tag once).
3. Batching ceiling: first-step generation for one problem's N rows per call versus all problems'
   rows in one call, and PRM scoring likewise; the throughput ratio bounds what lockstep batching
   can gain on this machine (a compute-bound model gains little from bigger batches).
4. In-search vs raw (`in_search_vs_raw`): the solve_batch run of 1 is metered call by call (rows,
   tokens, seconds of every policy and PRM call); the search's wall time not spent in a model
   call (tree bookkeeping, request planning, the strategy) is shared between the two models by
   their call time. Raw throughput is the same backend doing nothing but that work at the same
   rows per call, its cache empty: the policy sampling first steps for R rows (R / N prompts x N
   samples) for every R the search used, the PRM rescoring exactly the chains of each of the
   search's calls. ratio = (seconds the search's tokens take at the raw rates) / (seconds they
   took in the search): 1.0 means the search costs nothing beyond its model calls' raw work.

Usage: python -m benchmarks.perf_search [--problems 32] [--prm embedded] [--out DIR | FILE.json]
A directory gets perf_search.json and perf_search.md; FILE.json gets the JSON and FILE.md beside.
`--profile FILE.md` instead profiles (cProfile) one beam solve_batch and one solve per problem and
writes where their time goes: the functions with the most self time, the share of the run spent
outside the models' calls.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import torch

from reasoner import Reasoner
from reasoner.api import load_policy, load_prm
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.synthetic import load_split


@dataclass
class Metered:
    """A policy or PRM that records every call (rows, tokens, seconds) and delegates the rest,
    so the controller sees the model itself."""

    model: Any
    calls: list[dict] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def generate(self, requests: list[GenRequest]) -> list:
        t0 = time.perf_counter()
        outs = self.model.generate(requests)
        seconds = time.perf_counter() - t0
        self.calls.append(
            {
                "rows": sum(r.k for r in requests),
                "new_tokens": sum(c.new_tokens for out in outs for c in out),
                "seconds": seconds,
            }
        )
        return outs

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
        t0 = time.perf_counter()
        scores, tokens = self.model.score(requests)
        seconds = time.perf_counter() - t0
        self.calls.append(
            {"rows": len(requests), "tokens": tokens, "seconds": seconds, "requests": requests}
        )
        return scores, tokens


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


def first_step_requests(policy, problems, rows: int, k: int, seed: int) -> list[GenRequest]:
    """`rows` first-step samples: prompts in turn with k samples each (the last one fewer)."""
    requests = []
    left, i = rows, 0
    while left > 0:
        take = min(k, left)
        ids = policy.encode_prompt(problems[i % len(problems)].text)
        requests.append(GenRequest(ids, take, seed + i, "step", 1.0))
        left -= take
        i += 1
    return requests


def raw_policy_rate(policy, problems, rows: int, k: int, repeats: int) -> float:
    """Median new tokens/s of first-step generation at `rows` rows per call, cache cleared."""
    rates = []
    for r in range(repeats):
        requests = first_step_requests(policy, problems, rows, k, 1000 * r)
        policy.clear_cache()
        t0 = time.perf_counter()
        outs = policy.generate(requests)
        seconds = time.perf_counter() - t0
        rates.append(sum(c.new_tokens for out in outs for c in out) / seconds)
    return median(rates)


def in_search_vs_raw(
    policy: Metered, prm: Metered, wall: float, problems, k: int, repeats: int
) -> dict:
    """Throughput of the metered search's calls vs the same backend's raw calls at the same rows
    per call (see the module docstring, section 4)."""
    t_pol = sum(c["seconds"] for c in policy.calls)
    t_prm = sum(c["seconds"] for c in prm.calls)
    overhead = max(0.0, wall - t_pol - t_prm)
    model_time = (t_pol + t_prm) or 1.0
    search_pol = t_pol + overhead * t_pol / model_time
    search_prm = t_prm + overhead * t_prm / model_time
    raw = policy.model
    rates = {
        rows: raw_policy_rate(raw, problems, rows, k, repeats)
        for rows in sorted({c["rows"] for c in policy.calls})
    }
    raw_pol = sum(c["new_tokens"] / rates[c["rows"]] for c in policy.calls)
    raw_prm = 0.0
    raw_prm_tokens = 0
    for call in prm.calls:  # the same chains, nothing cached: the backend's plain batched work
        times = []
        for _ in range(repeats):
            prm.model.clear_cache()
            t0 = time.perf_counter()
            _, tokens = prm.model.score(call["requests"])
            times.append(time.perf_counter() - t0)
        rate = tokens / median(times)
        raw_prm += call["tokens"] / rate
        raw_prm_tokens += tokens
    pol_tokens = sum(c["new_tokens"] for c in policy.calls)
    prm_tokens = sum(c["tokens"] for c in prm.calls)
    return {
        "wall_seconds": wall,
        "policy_call_seconds": t_pol,
        "prm_call_seconds": t_prm,
        "outside_model_seconds": overhead,
        "policy_calls": len(policy.calls),
        "policy_rows_per_call": median(c["rows"] for c in policy.calls),
        "prm_calls": len(prm.calls),
        "prm_chains_per_call": median(c["rows"] for c in prm.calls),
        "policy_in_search_tok_s": pol_tokens / search_pol,
        "policy_raw_tok_s": pol_tokens / raw_pol,
        "policy_raw_tok_s_by_rows": {str(r): v for r, v in rates.items()},
        "prm_in_search_tok_s": prm_tokens / search_prm,
        "prm_raw_tok_s": prm_tokens / raw_prm,
        "prm_raw_tokens": raw_prm_tokens,
        "prm_in_search_tokens": prm_tokens,
        "ratio": {"policy": raw_pol / search_pol, "prm": raw_prm / search_prm},
    }


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


# where a profiled function's self time is counted: the search layer (what the controller,
# tree and strategies add), the backends' own Python and tensor bookkeeping, the model itself
SEARCH = ("reasoner/controller", "reasoner/tree", "reasoner/search", "strategies/")
SEARCH += ("reasoner/models/chunking", "reasoner/aggregation", "reasoner/grading", "reasoner/api")
PROFILE_GROUPS = [
    ("search: controller, tree, strategies, chunking, grading", SEARCH),
    (
        "backends: reasoner/models (KV reuse, sampling, step rules, PRM features), rest",
        ("reasoner/",),
    ),
    ("model: transformers and torch", ("transformers/", "torch/", "~:0")),
]


def profile_table(profile: cProfile.Profile, wall: float, top: int = 18) -> list[str]:
    """The functions with the most self time (project code and torch's kernels) as a table."""
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, fn), (_, calls, self_time, cum_time, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.split("/work/main/")[-1].split("site-packages/")[-1]
        rows.append((self_time, cum_time, calls, f"{where}:{line}({fn})"))
    groups: dict[str, float] = {}
    for self_time, _, _, name in rows:
        group = next((g for g, prefixes in PROFILE_GROUPS if name.startswith(prefixes)), "other")
        groups[group] = groups.get(group, 0.0) + self_time
    lines = ["| self time in | s | share of wall |", "|---|---:|---:|"]
    lines += [f"| {g} | {t:.2f} | {100 * t / wall:.1f} % |" for g, t in groups.items()]
    lines += ["", "| function | calls | self s | share of wall | cumulative s |"]
    lines += ["|---|---:|---:|---:|---:|"]
    for self_time, cum_time, calls, name in sorted(rows, reverse=True)[:top]:
        lines.append(
            f"| `{name}` | {calls} | {self_time:.2f} | {100 * self_time / wall:.1f} % | {cum_time:.2f} |"
        )
    return lines


def profile_search(args: argparse.Namespace, problems: list, path: Path) -> None:
    """cProfile one beam solve_batch and one solve per problem (fresh models each); write the
    self-time tables and the time outside model calls to `path` (Markdown)."""
    lines = [
        "# Where a search's time goes (cProfile)",
        "",
        f"Command: `python -m benchmarks.perf_search --problems {args.problems} --budget "
        f"{args.budget} --policy {args.policy} --prm {args.prm} --profile {path}`; load before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
        "Wall times include cProfile's own overhead (Python-heavy code is slowed most).",
    ]
    for mode in ("solve_batch", "solve"):
        policy, prm = Metered(load_policy(args.policy)), Metered(load_prm(args.prm))
        reasoner = Reasoner(strategy="beam", budget=args.budget, policy=policy, prm=prm, seed=0)
        run = (
            (lambda r=reasoner: r.solve_batch(problems))
            if mode == "solve_batch"
            else (lambda r=reasoner: [r.solve(p) for p in problems])
        )
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        profile.runcall(run)
        wall = time.perf_counter() - t0
        model = sum(c["seconds"] for c in policy.calls + prm.calls)
        lines += [
            "",
            f"## beam N={args.budget}, {len(problems)} problems, {mode}: {wall:.1f} s wall, "
            f"{model:.1f} s in model calls, {wall - model:.2f} s outside them "
            f"({100 * (wall - model) / wall:.1f} %)",
            "",
            *profile_table(profile, wall),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def clocked(fn):
    """fn()'s result, wall seconds and CPU seconds (this process, all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def output_paths(out: str) -> tuple[Path, Path]:
    """(JSON path, Markdown path): FILE.json and FILE.md beside it, or DIR/perf_search.*."""
    path = Path(out)
    if path.suffix == ".json":
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, path.with_suffix(".md")
    path.mkdir(parents=True, exist_ok=True)
    return path / "perf_search.json", path / "perf_search.md"


def markdown(report: dict, args: argparse.Namespace) -> list[str]:
    """The report as Markdown lines."""
    b = report["batching"]
    n = report["problems"]
    lines = [
        "# Search efficiency (arith test split)",
        "",
        f"Command: `python -m benchmarks.perf_search --problems {args.problems} --budget "
        f"{args.budget} --policy {args.policy} --prm {args.prm}`; load before: {report['load']}",
        "",
        f"Batching ({n} problems, beam N={args.budget}): solve_batch "
        f"{b['solve_batch_seconds']:.1f} s wall / {b['solve_batch_cpu_seconds']:.1f} CPU-s, "
        f"sequential solve {b['sequential_seconds']:.1f} s / {b['sequential_cpu_seconds']:.1f} "
        f"CPU-s, speed-up {b['speedup']:.2f}x; {b['identical_solutions']}/{n} identical solutions.",
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
    s = report["in_search"]
    r = report["in_search_vs_raw"]
    lines += [
        "",
        f"Batching ceiling (first step of {n} problems): {c['rows_per_call'][0]} rows per "
        f"call vs {c['rows_per_call'][1]}: policy {c['policy_tok_s'][0]:.0f} vs "
        f"{c['policy_tok_s'][1]:.0f} new tok/s ({c['policy_ratio']:.2f}x); PRM "
        f"{c['prm_tok_s'][0]:.0f} vs {c['prm_tok_s'][1]:.0f} tok/s ({c['prm_ratio']:.2f}x).",
        "",
        f"In search vs raw (the solve_batch run above, {s['wall_seconds']:.1f} s: policy calls "
        f"{s['policy_call_seconds']:.1f} s, PRM calls {s['prm_call_seconds']:.1f} s, outside "
        f"the models {s['outside_model_seconds']:.2f} s):",
        "",
        "| model | calls | rows per call (median) | in search tok/s | raw tok/s, same rows | in search / raw |",
        "|---|---:|---:|---:|---:|---:|",
        f"| policy (new tokens) | {s['policy_calls']} | {s['policy_rows_per_call']:.0f} | "
        f"{s['policy_in_search_tok_s']:.0f} | {s['policy_raw_tok_s']:.0f} | {r['policy']:.2f} |",
        f"| PRM (tokens computed) | {s['prm_calls']} | {s['prm_chains_per_call']:.0f} | "
        f"{s['prm_in_search_tok_s']:.0f} | {s['prm_raw_tok_s']:.0f} | {r['prm']:.2f} |",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--policy", default="embedded")
    ap.add_argument("--prm", default="embedded")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="raw calls per shape (median)")
    ap.add_argument("--out", default="benchmarks/results", help="a directory or a FILE.json")
    ap.add_argument("--profile", metavar="FILE.md", help="only profile the search, write FILE.md")
    args = ap.parse_args(argv)
    if args.problems < 1 or args.budget < 4 or args.repeats < 1:
        ap.error("--problems and --repeats must be >= 1 and --budget >= 4 (beam width 4)")
    torch.set_num_threads(args.threads)
    problems = load_split("test")[: args.problems]
    if args.profile:
        profile_search(args, problems, Path(args.profile))
        return 0
    report: dict = {
        "problems": len(problems),
        "budget": args.budget,
        "policy": args.policy,
        "prm": args.prm,
        "threads": args.threads,
        "machine": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }

    def fresh(strategy: str, policy=None, prm=None):  # new models: no KV carried between runs
        return Reasoner(
            strategy=strategy,
            budget=args.budget,
            policy=policy or load_policy(args.policy),
            prm=prm or load_prm(args.prm),
            seed=0,
        )

    # 1. batching (the solve_batch run is metered for 4)
    policy, prm = Metered(load_policy(args.policy)), Metered(load_prm(args.prm))
    fresh("beam", policy.model, prm.model).solve(problems[0])  # warm-up, not metered
    batch_reasoner = fresh("beam", policy, prm)
    batched, t_batch, c_batch = clocked(lambda: batch_reasoner.solve_batch(problems))
    r = fresh("beam")
    sequential, t_seq, c_seq = clocked(lambda: [r.solve(p) for p in problems])
    same = sum(a.steps == b.steps and a.answer == b.answer for a, b in zip(batched, sequential))
    report["batching"] = {
        "strategy": "beam",
        "solve_batch_seconds": t_batch,
        "solve_batch_cpu_seconds": c_batch,
        "sequential_seconds": t_seq,
        "sequential_cpu_seconds": c_seq,
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
        red = [s.stats.prm_tokens / max(1, prm_distinct_tokens(reasoner.prm, s.tree)) for s in sols]
        report["redundancy"][strategy] = {
            "policy_median": median(pol),
            "policy_mean": sum(pol) / len(pol),
            "prm_median": median(red),
            "prm_mean": sum(red) / len(red),
            "policy_tokens_mean": sum(s.stats.policy_tokens for s in sols) / len(sols),
            "prm_tokens_mean": sum(s.stats.prm_tokens for s in sols) / len(sols),
        }
    # 3. batching ceiling
    report["ceiling"] = batching_ceiling(
        load_policy(args.policy), load_prm(args.prm), problems, args.budget
    )
    # 4. in search vs raw, same backend objects, same rows per call
    report["in_search"] = in_search_vs_raw(
        policy, prm, t_batch, problems, args.budget, args.repeats
    )
    report["in_search_vs_raw"] = report["in_search"].pop("ratio")
    json_path, md_path = output_paths(args.out)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    lines = markdown(report, args)
    md_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

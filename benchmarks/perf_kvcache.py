"""Prefix KV cache memory and speed: the flat PrefixKVCache ("before") vs the RadixKVCache ("after").

Each case runs one `solve_batch` over T arith problems (T concurrent search trees) with the
embedded policy and evidence PRM, the same seed and cache budgets for both kinds, and reads the
caches when the search ends: bytes held, tokens whose KV is held, distinct tokens among the held
sequences (their union trie), so bytes per distinct tree token (the ideal is one token's KV:
layers x 2 x kv heads x head dim x 4 bytes). Beside it: cache hits, tokens each model computed
over the trees' distinct tokens (redundancy), accuracy, wall and CPU seconds, and whether the
two kinds returned identical solutions (they must, unless the flat cache evicted more) and, with
`--reference`, whether each equals a run whose caches never evicted (every kind must, when it
evicts nothing: a cached prefix and its recomputation differ in the last bits).

Usage: python -m benchmarks.perf_kvcache [--cases beam:32,beam:128,mcts:32] [--kinds flat,radix] [--budget 16]
       [--policy-mb 512] [--prm-mb 1024] [--threads 2] [--out benchmarks/results/kvcache]
       [--reference benchmarks/results/kvcache/unbounded/cases.jsonl]
Cases are run flat then radix, appended to cases.jsonl as each finishes (a rerun skips the
done ones; split the cases over several runs); summary.json and summary.md are rewritten from it.

PRM redundancy on vLLM next to HF (run in .venv-vllm): `python -m benchmarks.perf_kvcache
--prm-redundancy [--problems 16]`: beam and MCTS with the embedded policy (HF) and the LM ER-PRM
("embedded-lm") on HF (flat and radix caches) and on vLLM (prefix reuse on; and the same engine
not reading its cache: every chain whole, as the STEP pooler computes it), PRM tokens computed
over the trees' distinct PRM tokens; writes prm_redundancy.json / .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from statistics import median

import torch

from reasoner import Reasoner
from reasoner.grading import grade
from reasoner.models.base import ScoreRequest
from reasoner.synthetic import load_split

KINDS = ("flat", "radix")


def union_trie_size(sequences) -> int:
    """Distinct prefixes (trie nodes) of a set of token sequences: sorted, each adds its length
    minus its common prefix with the one before."""
    total, prev = 0, ()
    for seq in sorted(set(sequences)):
        common = 0
        for a, b in zip(prev, seq):
            if a != b:
                break
            common += 1
        total += len(seq) - common
        prev = seq
    return total


def token_kv_bytes(model) -> int:
    """Bytes of one token's keys and values in every layer."""
    cfg = model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    size = next(model.parameters()).element_size()
    return cfg.num_hidden_layers * 2 * kv_heads * head_dim * size


def prm_ids(prm, problem: str, steps: list[str]) -> list[int]:
    """The base-LM ids the evidence PRM encodes for a chain (for no steps: the prompt)."""
    ids, spans = prm.features.layout(ScoreRequest(problem, steps or [""]))
    return ids if steps else ids[: spans[0][0]]


def prm_distinct(prm, tree) -> int:
    """PRM tokens if every scored node were encoded exactly once (prompt once, then each step)."""
    scored = [n for n in tree.nodes[1:] if n.prm_score is not None]
    if not scored:
        return 0
    total = len(prm_ids(prm, tree.problem_text, []))
    for node in scored:
        steps = tree.steps(node)
        parent = len(prm_ids(prm, tree.problem_text, steps[:-1]))
        total += len(prm_ids(prm, tree.problem_text, steps)) - parent
    return total


def cache_report(model, cache) -> dict:
    """What a model's prefix cache holds: bytes, tokens held, distinct tokens, their ratios."""
    distinct = union_trie_size(cache.stored_sequences())
    per_token = token_kv_bytes(model)
    return {
        "entries": len(cache),
        "bytes": cache.bytes,
        "held_tokens": cache.stored_tokens(),
        "distinct_tokens": distinct,
        "bytes_per_distinct_token": cache.bytes / distinct if distinct else None,
        "token_kv_bytes": per_token,
        "vs_ideal": cache.bytes / (distinct * per_token) if distinct else None,
        "hits": cache.hits,
        "misses": cache.misses,
    }


def fingerprint(sols) -> str:
    """sha256 of every solution's answer, steps, scores and tree (tokens, log-probabilities, PRM
    scores; floats by repr, so exact)."""
    data = [
        (
            s.answer,
            s.steps,
            s.step_scores,
            [(n.parent, n.token_ids, n.logprob, n.prm_score) for n in s.tree.nodes],
        )
        for s in sols
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def run_case(strategy: str, trees: int, kind: str, args) -> dict:
    problems = load_split("test")[:trees]
    r = Reasoner(
        strategy=strategy,
        budget=args.budget,
        seed=0,
        policy_options={"kv_cache": kind, "prefix_cache_mb": args.policy_mb},
        prm_options={"kv_cache": kind, "prefix_cache_mb": args.prm_mb},
    )
    t0, c0 = time.perf_counter(), time.process_time()
    sols = r.solve_batch(problems)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pol = [s.stats.policy_tokens / s.stats.distinct_tokens for s in sols]
    prm = [s.stats.prm_tokens / max(1, prm_distinct(r.prm, s.tree)) for s in sols]
    row = {
        "strategy": strategy,
        "trees": trees,
        "kind": kind,
        "budget": args.budget,
        "policy_mb": args.policy_mb,
        "prm_mb": args.prm_mb,
        "wall_s": wall,
        "cpu_s": cpu,
        "accuracy": sum(grade(s.answer, p.answer) for s, p in zip(sols, problems)) / len(sols),
        "policy_tokens": sum(s.stats.policy_tokens for s in sols),
        "prm_tokens": sum(s.stats.prm_tokens for s in sols),
        "policy_redundancy_median": median(pol),
        "prm_redundancy_median": median(prm),
        "policy_cache": cache_report(r.policy.model, r.policy.prefix_cache),
        "prm_cache": cache_report(r.prm.features.model, r.prm.prefix_cache),
        "load_before": os.getloadavg(),
        "fingerprint": fingerprint(sols),
    }
    return row


def summarize(rows: list[dict], reference: list[dict] = ()) -> tuple[dict, str]:
    """Flat vs radix per case, side by side; `reference`: rows of a run whose caches never
    evicted (the unbounded reference every kind must equal when it evicts nothing)."""
    by = {(r["strategy"], r["trees"], r["kind"]): r for r in rows}
    unbounded = {(r["strategy"], r["trees"]): r["fingerprint"] for r in reference}
    cases = sorted({(r["strategy"], r["trees"]) for r in rows}, key=lambda c: (c[0], c[1]))
    summary: dict = {"machine": platform.platform(), "cases": {}}
    lines = [
        "# Prefix KV cache: flat (before) vs radix (after)",
        "",
        "Embedded policy + evidence PRM, arith test problems, one `solve_batch` per case "
        "(T concurrent trees), seed 0, the same cache budgets for both kinds. Bytes per distinct "
        "token: cache bytes / distinct tokens among the sequences it holds when the search ends "
        "(ideal = one token's KV). Redundancy: tokens computed / the trees' distinct tokens "
        "(median over problems). = flat: the same solutions, trees and scores (sha256) as the "
        "flat cache at the same budget; = unbounded: as a flat cache that never evicts "
        "(`--reference`; a prefix recomputed after an eviction differs in the last bits, so a "
        "cache equals it exactly when it evicted nothing the search needed again).",
        "",
        "| case | kind | policy B/distinct tok (x ideal) | PRM B/distinct tok (x ideal) | "
        "policy / PRM cache MB | policy / PRM hits | policy / PRM redundancy | accuracy | "
        "wall s | CPU s | = flat | = unbounded |",
        "|---|---|---|---|---|---|---|---|---:|---:|---|---|",
    ]
    for strategy, trees in cases:
        pair = [by.get((strategy, trees, k)) for k in KINDS]
        name = f"{strategy} T={trees}"
        entry = {k: r for k, r in zip(KINDS, pair) if r is not None}
        flat, radix = pair
        ref = unbounded.get((strategy, trees))
        present = [r for r in pair if r is not None]
        if ref is not None:
            entry["equal_to_unbounded"] = {r["kind"]: r["fingerprint"] == ref for r in present}
        summary["cases"][name] = entry
        if None not in pair:
            entry.update(compare(flat, radix))
        for r in present:
            pc, qc = r["policy_cache"], r["prm_cache"]
            same_as_flat = "-" if flat is None else r["fingerprint"] == flat["fingerprint"]
            lines.append(
                f"| {name} | {r['kind']} | {pc['bytes_per_distinct_token']:,.0f} "
                f"({pc['vs_ideal']:.2f}) | {qc['bytes_per_distinct_token']:,.0f} "
                f"({qc['vs_ideal']:.2f}) | {pc['bytes'] / 2**20:,.0f} / {qc['bytes'] / 2**20:,.0f} "
                f"| {pc['hits']} / {qc['hits']} | {r['policy_redundancy_median']:.2f} / "
                f"{r['prm_redundancy_median']:.2f} | {r['accuracy']:.1%} | {r['wall_s']:.1f} | "
                f"{r['cpu_s']:.1f} | {same_as_flat} | {'-' if ref is None else r['fingerprint'] == ref} |"
            )
    return summary, "\n".join(lines) + "\n"


def compare(flat: dict, radix: dict) -> dict:
    """Flat over radix: memory per distinct token, wall and CPU seconds; equal fingerprints."""
    pol, prm = "policy_cache", "prm_cache"
    return {
        "memory_ratio_policy": flat[pol]["bytes_per_distinct_token"]
        / radix[pol]["bytes_per_distinct_token"],
        "memory_ratio_prm": flat[prm]["bytes_per_distinct_token"]
        / radix[prm]["bytes_per_distinct_token"],
        "speed_ratio_wall": flat["wall_s"] / radix["wall_s"],
        "speed_ratio_cpu": flat["cpu_s"] / radix["cpu_s"],
        "identical": flat["fingerprint"] == radix["fingerprint"],
    }


def lm_prm_distinct(prm, tree) -> int:
    """PRM input tokens (the builder's ids) if every scored node were encoded exactly once."""
    scored = [n for n in tree.nodes[1:] if n.prm_score is not None]
    if not scored:
        return 0
    total = len(prm.builder.build(tree.problem_text, [])[0])
    for node in scored:
        steps = tree.steps(node)
        parent = len(prm.builder.build(tree.problem_text, steps[:-1])[0])
        total += len(prm.builder.build(tree.problem_text, steps)[0]) - parent
    return total


def prm_redundancy(args) -> int:
    """PRM tokens computed / distinct, HF (flat, radix) vs vLLM (reuse on, cache not read)."""
    from reasoner.models.hf_prm import HFPRM
    from reasoner.models.vllm_prm import VLLMPRM

    problems = load_split("test")[: args.problems]
    vllm = VLLMPRM("embedded-lm", threads=args.threads, prefix_reuse=True)
    backends = {
        "hf-flat": lambda: HFPRM("embedded-lm", kv_cache="flat", threads=args.threads),
        "hf-radix": lambda: HFPRM("embedded-lm", kv_cache="radix", threads=args.threads),
        "vllm-whole": lambda: vllm,
        "vllm-reuse": lambda: vllm,
    }
    rows = []
    for strategy in ("beam", "mcts"):
        for name, make in backends.items():
            prm = make()
            if name.startswith("vllm"):
                prm.read_prefix_cache = name == "vllm-reuse"
            r = Reasoner(strategy=strategy, budget=args.budget, seed=0, prm=prm)
            t0, c0 = time.perf_counter(), time.process_time()
            sols = r.solve_batch(problems)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            ratios = [s.stats.prm_tokens / max(1, lm_prm_distinct(prm, s.tree)) for s in sols]
            rows.append(
                {
                    "strategy": strategy,
                    "prm": name,
                    "problems": len(problems),
                    "budget": args.budget,
                    "prm_tokens": sum(s.stats.prm_tokens for s in sols),
                    "prm_redundancy_median": median(ratios),
                    "prm_redundancy_mean": sum(ratios) / len(ratios),
                    "accuracy": sum(grade(s.answer, p.answer) for s, p in zip(sols, problems))
                    / len(sols),
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "load": os.getloadavg(),
                }
            )
            print(json.dumps(rows[-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prm_redundancy.json").write_text(
        json.dumps({"machine": platform.platform(), "rows": rows}, indent=2)
    )
    lines = [
        "# PRM redundancy: vLLM next to HF (LM ER-PRM `embedded-lm`, embedded HF policy)",
        "",
        f"{len(problems)} arith test problems, N={args.budget}, seed 0, one `solve_batch` each. "
        "Redundancy: PRM tokens computed / the trees' distinct PRM tokens (median / mean over "
        "problems). vllm-whole: the same engine not reading its prefix cache (every chain "
        "computed whole, the STEP pooler's cost); wall and CPU seconds include the HF policy.",
        "",
        "| strategy | PRM backend | redundancy (median / mean) | PRM tokens | accuracy | wall s "
        "| CPU s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['prm']} | {r['prm_redundancy_median']:.2f} / "
            f"{r['prm_redundancy_mean']:.2f} | {r['prm_tokens']:,} | {r['accuracy']:.1%} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} |"
        )
    (out / "prm_redundancy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", default="beam:32,beam:128,mcts:32")
    ap.add_argument("--kinds", default="flat,radix", help="which caches to run (a resumable split)")
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--policy-mb", type=int, default=512)
    ap.add_argument("--prm-mb", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/kvcache")
    ap.add_argument(
        "--reference",
        help="cases.jsonl of a run whose caches never evicted (its flat rows): the summary says "
        "which rows equal it",
    )
    ap.add_argument("--prm-redundancy", action="store_true", help="vLLM vs HF PRM redundancy")
    ap.add_argument("--problems", type=int, default=16, help="with --prm-redundancy")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.prm_redundancy:
        return prm_redundancy(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "cases.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["strategy"], r["trees"], r["kind"]) for r in rows}
    for case in args.cases.split(","):
        strategy, trees = case.split(":")
        for kind in args.kinds.split(","):
            if kind not in KINDS:
                raise SystemExit(f"--kinds: {kind!r} is not one of {list(KINDS)}")
            if (strategy, int(trees), kind) in done:
                continue
            row = run_case(strategy, int(trees), kind, args)
            rows.append(row)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            print(json.dumps({k: row[k] for k in ("strategy", "trees", "kind", "wall_s")}))
    reference = []
    if args.reference:
        lines = Path(args.reference).read_text().splitlines()
        reference = [r for r in map(json.loads, lines) if r["kind"] == "flat"]
    summary, md = summarize(rows, reference)
    given = sys.argv[1:] if argv is None else argv
    summary["command"] = " ".join(["python -m benchmarks.perf_kvcache", *given])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Report writers: summary.json, summary.md (accuracy with 95% CIs, costs), a terminal table and
accuracy plots (vs budget and vs FLOPs), all from the graded rows of a bench run.

It reads rows (`benchmarks.bench.rows.ResultRow`) and the run's config and metadata, and never the
runner itself, so the runner can import it without a cycle.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean, median, pstdev
from typing import Any

import numpy as np

from benchmarks.bench.rows import ResultRow
from benchmarks.config import BenchConfig
from reasoner.registry import get_strategy

TIME_FIELDS = ("seconds_mean", "seconds_median", "wall_seconds_mean")  # differ run to run


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sane at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(
    values: list[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of a mean over problems (fixed seed: reproducible)."""
    if not values:
        return (0.0, 0.0)
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def _cell_stats(rs: list[ResultRow]) -> dict[str, Any]:
    """Accuracy (Wilson 95% CI), coverage, errors, stop reasons and mean costs of some rows."""
    n = len(rs)
    k = sum(1 for r in rs if r.correct)
    lo, hi = wilson_interval(k, n)
    distinct = sum(r.distinct_tokens or 0 for r in rs)
    sub = {r.subsampled_from for r in rs if r.subsampled_from}
    return {
        "n": n,
        "correct": k,
        "accuracy": k / n,
        "ci95": [lo, hi],
        "coverage": sum(1 for r in rs if r.covered) / n,
        "errors": sum(1 for r in rs if r.error),
        "reasons": dict(sorted(Counter(r.reason or "" for r in rs).items())),
        "policy_tokens_mean": mean(r.policy_tokens for r in rs),
        "policy_new_tokens_mean": mean(r.policy_new_tokens for r in rs),
        "prm_tokens_mean": mean(r.prm_tokens for r in rs),
        "flops_mean": mean(r.flops for r in rs),
        "redundancy": (sum(r.policy_tokens for r in rs) / distinct) if distinct else None,
        "seconds_mean": mean(r.seconds for r in rs),
        "seconds_median": median(r.seconds for r in rs),
        "wall_seconds_mean": mean(r.wall_seconds for r in rs),
        "subsampled_from": max(sub) if sub else None,
    }


def _sorter(order: Sequence[str]) -> Callable[[tuple], tuple]:
    """Sort key for (strategy, budget, prm, aggregation, ...): strategies in `order` (the
    config's order) first, then by name; within one, by PRM, aggregation, budget."""
    order = list(order)

    def key(k: tuple) -> tuple:
        strategy, budget, prm, agg = k[:4]
        rank = order.index(strategy) if strategy in order else len(order)
        return (rank, strategy, prm, agg, budget) + tuple(k[4:])

    return key


def summarize(rows: Sequence[ResultRow], order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One entry per grid cell (strategy, budget, PRM, aggregation, seed): accuracy with its
    Wilson 95% CI over problems, coverage, errors, stop reasons and mean costs per problem."""
    groups: dict[tuple, list[ResultRow]] = defaultdict(list)
    for r in rows:
        groups[(r.strategy, r.budget, r.prm, r.aggregation, r.seed)].append(r)
    out = []
    for key in sorted(groups, key=_sorter(order)):
        strategy, budget, prm, agg, seed = key
        out.append(
            {
                "strategy": strategy,
                "budget": budget,
                "prm": prm,
                "aggregation": agg,
                "seed": seed,
                **_cell_stats(groups[key]),
            }
        )
    return out


def combine_seeds(rows: Sequence[ResultRow], order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per (strategy, budget, PRM, aggregation) over all seeds: accuracy = mean over seeds, CI by
    bootstrap over problems of each problem's mean correctness; std of the per-seed accuracies."""
    groups: dict[tuple, list[ResultRow]] = defaultdict(list)
    for r in rows:
        groups[(r.strategy, r.budget, r.prm, r.aggregation)].append(r)
    out = []
    for key in sorted(groups, key=_sorter(order)):
        rs = groups[key]
        seeds = sorted({r.seed for r in rs})
        per_problem: dict[str, list[float]] = defaultdict(list)
        per_seed: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            per_problem[r.problem_id].append(float(r.correct))
            per_seed[r.seed].append(float(r.correct))
        problem_means = [mean(v) for _, v in sorted(per_problem.items())]
        stats = _cell_stats(rs)
        stats.update(
            {
                "n": len(problem_means),
                "rows": len(rs),
                "accuracy": mean(problem_means),
                "ci95": list(bootstrap_interval(problem_means)),
                "seeds": seeds,
                "seed_std": pstdev([mean(v) for v in per_seed.values()]) if len(seeds) > 1 else 0.0,
            }
        )
        strategy, budget, prm, agg = key
        out.append(
            {"strategy": strategy, "budget": budget, "prm": prm, "aggregation": agg, **stats}
        )
    return out


def short(prm: str) -> str:
    return prm if prm in ("none", "embedded") else Path(prm).name


def _rows_for_table(summary: list[dict[str, Any]]) -> list[list[str]]:
    table = []
    for s in summary:
        lo, hi = s["ci95"]
        seed = s.get("seed", "all")
        mark = "*" if s.get("subsampled_from") else ""
        table.append(
            [
                s["strategy"] + mark,
                str(s["budget"]),
                short(s["prm"]),
                s["aggregation"],
                str(seed),
                str(s["n"]),
                f"{100 * s['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})",
                f"{100 * s['coverage']:.1f}",
                f"{s['policy_tokens_mean']:.0f}",
                f"{s['prm_tokens_mean']:.0f}",
                f"{s['flops_mean'] / 1e9:.3g}",
                f"{s['seconds_mean']:.2f}",
                str(s["errors"]),
            ]
        )
    return table


HEADERS = [
    "strategy",
    "N",
    "PRM",
    "agg",
    "seed",
    "n",
    "accuracy % (95% CI)",
    "coverage %",
    "policy tok",
    "PRM tok",
    "GFLOPs",
    "s/problem",
    "errors",
]


def markdown_table(summary: list[dict[str, Any]]) -> str:
    right = {
        "N",
        "seed",
        "n",
        "coverage %",
        "policy tok",
        "PRM tok",
        "GFLOPs",
        "s/problem",
        "errors",
    }
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---:" if h in right else "---" for h in HEADERS) + "|",
    ]
    for cells in _rows_for_table(summary):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def terminal_table(summary: list[dict[str, Any]]) -> str:
    """The same table, aligned for a terminal."""
    table = [HEADERS, *_rows_for_table(summary)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    left = {0, 2, 3, 6}
    lines = []
    for j, row in enumerate(table):
        cells = [
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _label(s: dict[str, Any], with_prm: set[str] | frozenset[str] = frozenset()) -> str:
    if s["prm"] == "none":
        return f"{s['strategy']} (no PRM)" if s["strategy"] in with_prm else s["strategy"]
    return f"{s['strategy']} ({short(s['prm'])}, {s['aggregation']})"


def plot(
    summary: list[dict[str, Any]],
    png: Path,
    title: str = "",
    budget_free: Sequence[str] = ("greedy",),
) -> None:
    """Accuracy vs budget (95% CI bands) and vs FLOPs, one line per strategy/PRM/aggregation
    (seeds averaged); a budget-free strategy (greedy) is a dashed horizontal line. Cells where
    every row errored are left out (the table lists them)."""
    # here, not at the top: the headless backend must be chosen before pyplot is first imported,
    # and only writing a plot needs matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lines: dict[str, list[dict]] = defaultdict(list)
    with_prm = {s["strategy"] for s in summary if s["prm"] != "none"}
    for s in summary:
        if s["errors"] < s.get("rows", s["n"]):
            lines[_label(s, with_prm)].append(s)
    budgets = sorted(
        {s["budget"] for pts in lines.values() for s in pts if s["strategy"] not in budget_free}
    ) or [1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    cmap = plt.get_cmap("tab10" if len(lines) <= 10 else "tab20")
    markers = "osD^v<>ph*"
    for i, (label, pts) in enumerate(lines.items()):
        color, marker = cmap(i % cmap.N), markers[i % len(markers)]
        by_budget: dict[int, list[dict]] = defaultdict(list)
        for p in pts:
            by_budget[p["budget"]].append(p)
        xs = sorted(by_budget)
        acc = [100 * mean(p["accuracy"] for p in by_budget[x]) for x in xs]
        lo = [100 * mean(p["ci95"][0] for p in by_budget[x]) for x in xs]
        hi = [100 * mean(p["ci95"][1] for p in by_budget[x]) for x in xs]
        flops = [mean(p["flops_mean"] for p in by_budget[x]) / 1e9 for x in xs]
        if pts[0]["strategy"] in budget_free and len(xs) == 1:
            axes[0].axhline(acc[0], linestyle="--", color=color, label=label)
            axes[0].axhspan(lo[0], hi[0], color=color, alpha=0.07)
        else:
            axes[0].plot(xs, acc, marker=marker, color=color, label=label)
            axes[0].fill_between(xs, lo, hi, color=color, alpha=0.08 if len(lines) <= 4 else 0.04)
        keep = [j for j, f in enumerate(flops) if f > 0]
        if keep:
            axes[1].plot(
                [flops[j] for j in keep],
                [acc[j] for j in keep],
                marker=marker,
                linestyle="--" if len(xs) == 1 else "-",
                color=color,
                label=label,
            )
    if len(budgets) > 1:
        axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(budgets, [str(b) for b in budgets])
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_xlabel("budget N (complete solutions' worth of policy generation)")
    axes[1].set_xscale("log")
    axes[1].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes[1].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    axes[1].set_xlabel("GFLOPs per problem (policy + PRM)")
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_title("accuracy vs budget (bands: 95% CI)", fontsize=10)
    axes[1].set_title("accuracy vs compute", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(0.995, 0.5))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------------------------


def _problems_line(meta: dict[str, Any]) -> str:
    p = meta.get("problems", {})
    total, selected, used = p.get("split_total"), p.get("selected"), p.get("used")
    offset, limit = p.get("offset", 0), p.get("limit")
    if selected == total and not offset:
        scope = f"all {total} problems of the split"
    else:
        last = offset + (selected or 0) - 1
        scope = (
            f"**a subset**: problems {offset}-{last} in file order ({selected} of {total}; "
            f"offset {offset}, limit {limit})"
        )
    excluded = p.get("excluded_no_gold") or []
    line = f"Problems: {used} graded, {scope}."
    if excluded:
        shown = ", ".join(excluded[:10]) + (" ..." if len(excluded) > 10 else "")
        line += f" Excluded {len(excluded)} without a gold answer: {shown}."
    return line


def _error_section(rows: Sequence[ResultRow], order: Sequence[str]) -> list[str]:
    errored = [r for r in rows if r.error]
    if not errored:
        return ["Errors: none."]
    groups: dict[tuple, list[ResultRow]] = defaultdict(list)
    for r in errored:
        groups[(r.strategy, r.budget, r.prm, r.aggregation, r.error)].append(r)
    problems = {r.problem_id for r in errored}
    out = [
        f"## Errors: {len(errored)} rows in {len(problems)} problems (counted as wrong)",
        "",
        "| strategy | N | PRM | agg | rows | problems | error |",
        "|---|---:|---|---|---:|---|---|",
    ]
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), _sorter(order)(kv[0][:4])))
    for (strategy, budget, prm, agg, msg), rs in ordered[:40]:
        ids = sorted({r.problem_id for r in rs})
        shown = ", ".join(ids[:5]) + (f" +{len(ids) - 5} more" if len(ids) > 5 else "")
        text = msg.replace("|", "\\|").replace("\n", " ")[:300]
        out.append(
            f"| {strategy} | {budget} | {short(prm)} | {agg} | {len(rs)} | {shown} | {text} |"
        )
    if len(ordered) > 40:
        out.append(f"| ... | | | | | | {len(ordered) - 40} more kinds: see results.jsonl |")
    return out


def _capped_section(rows: Sequence[ResultRow]) -> list[str]:
    """The report's lines on searches a cap stopped, and on those that chose a cut chain."""
    capped = Counter(
        r.reason for r in rows if r.reason in ("time-limit", "node-limit", "no-terminal")
    )
    out = []
    if capped:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(capped.items()))
        out += [
            "",
            f"Searches stopped by a cap or without a finished chain (graded as returned): {parts}.",
        ]
    truncated = sum(1 for r in rows if r.reason == "truncated")
    if truncated:
        out += [
            "",
            f"Searches whose chosen chain a length cap cut before the policy finished it "
            f"(truncated: no answer, counted wrong): {truncated}.",
        ]
    return out


def _budget_free(strategies: Sequence[str]) -> list[str]:
    return [s for s in strategies if not get_strategy(s).uses_budget]


def write_reports(
    rows: Sequence[ResultRow], cfg: BenchConfig, meta: dict[str, Any], out: Path
) -> dict[str, Any]:
    """summary.json, summary.md and accuracy.png from the rows of the current grid and problems."""
    order = list(cfg.strategies)
    summary = summarize(rows, order)
    seeds = {r.seed for r in rows}
    combined = combine_seeds(rows, order) if len(seeds) > 1 else []
    notes = [
        "Budget N = complete solutions' worth of policy generation the strategy may spend "
        "(best-of-N: N samples; beam: N beams); budget-free strategies (greedy) run once, as N=1.",
        "Accuracy: share of problems whose chosen answer is equivalent to the gold answer "
        "(reasoner.grading); errored rows count as wrong. 95% CI: Wilson score interval over "
        "problems"
        + ("; seeds combined: bootstrap over problems of per-problem mean." if combined else "."),
        "Coverage: some finished chain in the search tree reached the gold answer.",
        "Tokens, FLOPs and seconds are means per problem; FLOPs = 2 x parameters x tokens for "
        "each model (policy + PRM); seconds = model time attributed to the problem.",
        "The gold answer is used only to grade: searches receive the problem text and id only "
        "(no answer, reference solution or dataset metadata).",
    ]
    if any(s.get("subsampled_from") for s in summary):
        n_max = max(s["subsampled_from"] for s in summary if s.get("subsampled_from"))
        notes.append(
            f"\\* subsampled: best_of_n / majority / weighted_best_of_n at every N come from ONE "
            f"sampling run at N={n_max} per (PRM, seed), stored with its tree in samples.jsonl "
            f"(subsampling requires trees): a budget-n row replays the strategy on the first n "
            f"rollouts and their stored PRM scores. Their tokens and FLOPs are those n rollouts' "
            f"(PRM tokens: their share of the run's); their seconds are the run's time scaled by "
            f"FLOPs share (estimated, not measured). PRM-free rows share the first PRM's samples."
        )
    data = {
        # the flat schema of the spine issue: one row per grid cell
        "rows": [
            {
                "suite": cfg.dataset,
                "strategy": c["strategy"],
                "budget": c["budget"],
                "prm": c["prm"],
                "aggregation": c["aggregation"],
                "seed": c["seed"],
                "n_problems": c["n"],
                "accuracy": c["accuracy"],
                "pass_at_budget": c["coverage"],  # oracle coverage: reported, never used to choose
                "policy_tokens": c["policy_tokens_mean"],
                "prm_tokens": c["prm_tokens_mean"],
                "flops": c["flops_mean"],
                "seconds": c["seconds_mean"],
            }
            for c in summary
        ],
        "meta": meta,
        "cells": summary,
        "combined_seeds": combined,
        "errors": sum(1 for r in rows if r.error),
        "notes": notes,
    }
    (out / "summary.json").write_text(json.dumps(data, indent=2))

    models = meta.get("models", {})
    pol = models.get("policy") or {}
    prms = models.get("prms") or {}
    files = meta.get("data_files", [])
    history = meta.get("history", [])
    header = [
        f"# Benchmark `{cfg.name}`: {cfg.dataset} ({cfg.split})",
        "",
        *([cfg.description, ""] if cfg.description else []),
        _problems_line(meta) + "  ",
        "Data: "
        + (
            ", ".join(f"`{d['file']}` (sha256 {d['sha256'][:12]})" for d in files)
            if files
            else "generated"
        )
        + "  ",
        f"Policy: `{cfg.policy}`"
        + (f" (sha256 {pol['sha256'][:12]})" if pol.get("sha256") else "")
        + f", backend {cfg.backend}, temperature {cfg.temperature}, step format "
        + f"`{cfg.step_format or 'saved with the checkpoint'}`  ",
        "PRMs: "
        + ", ".join(
            f"`{p}`"
            + (f" (sha256 {prms[p]['sha256'][:12]})" if (prms.get(p) or {}).get("sha256") else "")
            for p in cfg.prms
        )
        + "  ",
        f"Command: `{meta.get('command', '')}`  ",
        f"Code: git {meta.get('git_commit', '')[:10] or 'unknown'}"
        + (" (uncommitted changes)" if meta.get("git_dirty") else "")
        + f"; reasoner {meta.get('versions', {}).get('reasoner', '?')}, torch "
        + f"{meta.get('versions', {}).get('torch', '?')}  ",
    ]
    if len(history) > 1:
        commits = sorted({h.get("git_commit", "")[:10] for h in history})
        header.append(
            f"Resumed: {len(history)} invocations since {meta.get('first_started')}"
            + (f" across commits {', '.join(commits)}" if len(commits) > 1 else "")
            + "  "
        )
    md = [*header, "", *[f"- {n}" for n in notes], "", markdown_table(summary)]
    if combined:
        md += ["", "## Seeds combined", "", markdown_table(combined)]
    md += ["", *_error_section(rows, order), *_capped_section(rows)]
    if summary:
        md += ["", "![accuracy vs budget and FLOPs](accuracy.png)"]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    if summary:
        plot(
            combined or summary,
            out / "accuracy.png",
            title=f"{cfg.name}: {cfg.dataset} {cfg.split}",
            budget_free=_budget_free(order),
        )
    return data

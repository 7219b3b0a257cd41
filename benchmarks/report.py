"""Report writers: summary.json, summary.md (accuracy with 95% CIs, costs) and accuracy plots."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean, median
from typing import Any


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sane at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per grid cell with accuracy, CI, coverage and median/mean costs."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["strategy"], r["budget"], r["prm"], r["aggregation"], r["seed"])].append(r)
    out = []
    for (strategy, budget, prm, agg, seed), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3], kv[0][4])
    ):
        n = len(rs)
        k = sum(1 for r in rs if r["correct"])
        lo, hi = wilson_interval(k, n)
        out.append(
            {
                "strategy": strategy,
                "budget": budget,
                "prm": prm,
                "aggregation": agg,
                "seed": seed,
                "n": n,
                "errors": sum(1 for r in rs if r.get("error")),
                "accuracy": k / n,
                "ci95": [lo, hi],
                "coverage": sum(1 for r in rs if r.get("covered")) / n,
                "policy_tokens_mean": mean(r["policy_tokens"] for r in rs),
                "prm_tokens_mean": mean(r["prm_tokens"] for r in rs),
                "flops_mean": mean(r["flops"] for r in rs),
                "seconds_mean": mean(r["seconds"] for r in rs),
                "seconds_median": median(r["seconds"] for r in rs),
            }
        )
    return out


def _short(prm: str) -> str:
    return prm if prm in ("none", "embedded") else Path(prm).name


def markdown_table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| strategy | N | PRM | agg | seed | n | accuracy (95% CI) | coverage | policy tok | PRM tok | GFLOPs | s/problem |",
        "|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lo, hi = s["ci95"]
        lines.append(
            f"| {s['strategy']} | {s['budget']} | {_short(s['prm'])} | {s['aggregation']} | {s['seed']} | {s['n']} "
            f"| {100 * s['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f}) | {100 * s['coverage']:.1f} "
            f"| {s['policy_tokens_mean']:.0f} | {s['prm_tokens_mean']:.0f} | {s['flops_mean'] / 1e9:.2f} "
            f"| {s['seconds_mean']:.2f} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], png: Path) -> None:
    """Accuracy vs budget and vs FLOPs, one line per strategy/PRM/aggregation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[dict]] = defaultdict(list)
    for s in summary:
        label = (
            s["strategy"]
            if s["prm"] == "none"
            else f"{s['strategy']} ({_short(s['prm'])}, {s['aggregation']})"
        )
        lines[label].append(s)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, pts in sorted(lines.items()):
        pts = sorted(pts, key=lambda p: p["budget"])
        by_budget: dict[int, list[dict]] = defaultdict(list)
        for p in pts:
            by_budget[p["budget"]].append(p)
        xs = sorted(by_budget)
        acc = [100 * mean(p["accuracy"] for p in by_budget[x]) for x in xs]
        flops = [mean(p["flops_mean"] for p in by_budget[x]) for x in xs]
        style = "--" if len(xs) == 1 else "-"
        axes[0].plot(xs, acc, style, marker="o", label=label)
        axes[1].plot(flops, acc, style, marker="o", label=label)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("budget N")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("FLOPs per problem (policy + PRM)")
    for ax in axes:
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def write_reports(
    rows: list[dict[str, Any]], cfg: Any, meta: dict[str, Any], out: Path
) -> dict[str, Any]:
    summary = summarize(rows)
    problems = meta.get("problems")
    data = {"run": meta, "cells": summary}
    (out / "summary.json").write_text(json.dumps(data, indent=2))
    subset = f"first {cfg.limit} problems (offset {cfg.offset})" if cfg.limit else "all problems"
    header = [
        f"# Benchmark: {cfg.suite} ({cfg.split}), {problems} problems: {subset}",
        "",
        f"Command: `{meta.get('command', '')}`  ",
        f"Policy: `{cfg.policy}` ({cfg.backend}); temperature {cfg.temperature}; git {meta.get('git_commit', '')[:10]}",
        "",
        "Budget N = complete solutions' worth of policy generation (best-of-N: N samples; beam: N beams).",
        "Coverage = any finished chain in the search tree reached the gold answer.",
        "",
    ]
    md = "\n".join(header) + markdown_table(summary) + "\n"
    (out / "summary.md").write_text(md)
    if summary:
        plot(summary, out / "accuracy.png")
    return data

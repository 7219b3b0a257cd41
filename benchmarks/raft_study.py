"""RAFT's evaluation through `reasoner bench`, and the RAFT study's report.

`evaluate_policy` is the evaluator `reasoner raft` passes to `run_raft`: greedy and majority@N
on the first problems of the arith test split, one resumable bench run per policy (Wilson 95%
CIs from `benchmarks.report`). The study (`python -m benchmarks.raft_study report`) gathers the
rows of several RAFT runs into summary.json, a Markdown table and one plot of greedy accuracy per
round per selector with CI bands (benchmarks/results/raft/README.md has the commands).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.bench.run import run_bench
from benchmarks.config import BenchConfig
from reasoner.types import ReasonerError

__all__ = ["ROW_FIELDS", "evaluate_policy", "gather_rows", "write_study"]

# the fields every summary row carries (the list, then costs)
ROW_FIELDS = (
    "selector",
    "round",
    "n_problems",
    "greedy_accuracy",
    "greedy_ci_low",
    "greedy_ci_high",
    "majority16_accuracy",
    "majority16_ci_low",
    "majority16_ci_high",
    "selected_correct_rate",
    "selected",
    "prompts",
    "k",
    "sampling_tokens",
    "sampling_prm_tokens",
    "training_tokens",
    "training_steps",
)


def evaluate_policy(
    policy: str,
    out_dir: Path,
    problems: int = 300,
    majority_n: int = 16,
    with_majority: bool = True,
    batch_size: int = 32,
    threads: int = 1,
    backend: str = "hf",
) -> dict[str, Any]:
    """Greedy and majority@N accuracy (Wilson 95% CIs; majority None unless `with_majority`) of
    `policy` on the first `problems` arith test problems: a bench run in `out_dir`, resumed where
    it stopped (a later call with majority reuses the greedy rows)."""
    cfg = BenchConfig(
        name="raft-eval",
        description=f"RAFT evaluation of {policy}: greedy and majority@{majority_n}",
        dataset="arith",
        split="test",
        limit=problems,
        policy=policy,
        policy_options={"threads": threads},
        prms=["none"],
        backend=backend,
        strategies=["greedy", "majority"] if with_majority else ["greedy"],
        budgets=[majority_n],
        batch_size=batch_size,
        out_dir=str(out_dir),
    )
    data = run_bench(cfg, argv=["raft-eval", policy], progress=False)
    cells = {c["strategy"]: c for c in data["cells"]}
    greedy = cells["greedy"]
    none = {"n": problems, "accuracy": None, "ci95": [None, None], "errors": 0}
    vote = cells["majority"] if with_majority else none | {"policy_tokens_mean": 0}
    if greedy["n"] != problems or vote["n"] != problems:
        raise ReasonerError(f"raft evaluation in {out_dir}: expected {problems} rows per strategy")
    n = majority_n
    return {
        "n_problems": greedy["n"],
        "greedy_accuracy": greedy["accuracy"],
        "greedy_ci_low": greedy["ci95"][0],
        "greedy_ci_high": greedy["ci95"][1],
        f"majority{n}_accuracy": vote["accuracy"],
        f"majority{n}_ci_low": vote["ci95"][0],
        f"majority{n}_ci_high": vote["ci95"][1],
        "eval_errors": greedy["errors"] + vote["errors"],
        "eval_policy_tokens": round(
            (greedy["policy_tokens_mean"] + vote["policy_tokens_mean"]) * greedy["n"]
        ),
    }


# ----------------------------------------------------------------------------------------------
# The study's report
# ----------------------------------------------------------------------------------------------


def gather_rows(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """Every finished round of each RAFT run directory (its round-*/metrics.json), in order;
    round 0 once per run (the same starting policy, evaluated once through the shared cache)."""
    rows = []
    for run in run_dirs:
        found = sorted(run.glob("round-*/metrics.json"), key=lambda p: int(p.parent.name[6:]))
        if not found:
            raise ReasonerError(f"{run}: no finished round (round-*/metrics.json)")
        rows += [json.loads(p.read_text()) for p in found]
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the study: one line per (selector, round)."""
    head = (
        "| selector | round | greedy % (95% CI) | majority@16 % (95% CI) | kept | kept correct % "
        "| sampling policy tok | sampling PRM tok | training tok |\n"
        "|---|---:|---|---|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        greedy = (
            f"{_pct(r['greedy_accuracy'])} ({_pct(r['greedy_ci_low'])}-{_pct(r['greedy_ci_high'])})"
        )
        vote = (
            f"{_pct(r['majority16_accuracy'])} "
            f"({_pct(r['majority16_ci_low'])}-{_pct(r['majority16_ci_high'])})"
            if r["majority16_accuracy"] is not None
            else "-"
        )
        kept = "-" if r["selected"] is None else f"{r['selected']}/{r['prompts']}"
        lines.append(
            f"| {r['selector']} | {r['round']} | {greedy} | {vote} | {kept} | "
            f"{_pct(r['selected_correct_rate'])} | {r['sampling_tokens']:,} | "
            f"{r['sampling_prm_tokens']:,} | {r['training_tokens']:,} |"
        )
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], png: Path) -> None:
    """Greedy accuracy per round, one line per selector, with its Wilson 95% CI as a band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    selectors = list(dict.fromkeys(r["selector"] for r in rows))
    for i, name in enumerate(selectors):
        rs = sorted((r for r in rows if r["selector"] == name), key=lambda r: r["round"])
        x = [r["round"] + (i - len(selectors) / 2) * 0.03 for r in rs]  # dodge the bands
        y = [100 * r["greedy_accuracy"] for r in rs]
        lo = [100 * r["greedy_ci_low"] for r in rs]
        hi = [100 * r["greedy_ci_high"] for r in rs]
        (line,) = ax.plot(x, y, marker="o", label=name)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
    ax.set_xlabel("RAFT round (0 = the shipped policy)")
    ax.set_ylabel("greedy accuracy % (arith test)")
    ax.set_xticks(sorted({r["round"] for r in rows}))
    n = rows[0]["n_problems"] if rows else 0
    ax.set_title(f"RAFT: greedy accuracy per round, {n} test problems, 95% Wilson CI bands")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def write_study(run_dirs: list[Path], out: Path) -> list[dict[str, Any]]:
    """summary.json ({"rows": [...]}), summary.md and raft_greedy.png of the finished rounds."""
    rows = gather_rows(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    keep = [{k: r.get(k) for k in ROW_FIELDS} | _costs(r) for r in rows]
    (out / "summary.json").write_text(json.dumps({"rows": keep}, indent=2) + "\n")
    (out / "summary.md").write_text("# RAFT study\n\n" + table(keep))
    plot(keep, out / "raft_greedy.png")
    return keep


def _costs(row: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in row if k.endswith(("_wall_s", "_cpu_s"))] + ["eval_policy_tokens"]
    return {k: row[k] for k in keys if k in row}


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.raft_study report --runs DIR,DIR --out benchmarks/results/raft`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raft_study")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("report", help="gather RAFT runs into the study's table and plot")
    p.add_argument("--runs", required=True, help="comma-separated RAFT out_dirs, in order")
    p.add_argument("--out", default="benchmarks/results/raft")
    args = parser.parse_args(argv)
    try:
        rows = write_study([Path(r) for r in args.runs.split(",") if r], Path(args.out))
    except ReasonerError as err:
        print(f"raft_study: error: {err}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

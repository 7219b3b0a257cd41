"""The ER-PRM paper's experiment at our scale: best-of-N with PRMs trained on hard, soft, ER and
ORM labels from the same rollouts, against greedy, majority vote and an exact equation checker.

One sampling run (N_max solutions per arith test problem, temperature 1) is stored once and scored
by every PRM, so all rows judge the very same solutions (benchmarks.lab.er_cache). A budget-n row
averages over the N_max/n disjoint groups of n solutions of each problem (less noise than one
group); its 95% CI is a bootstrap over problems. Step-F1 (ProcessBench style) uses the first 4
solutions per problem, labelled by the exact step checker (reasoner.synthetic.first_error); the
metrics are in benchmarks.lab.er_metrics.

Usage:
  python -m benchmarks.lab.er_experiment --prms er2=runs/prm-er2,hard=runs/prm-hard,... \
      [--problems 300] [--max-n 64] [--budgets 4,16,64]
Samples and scores are cached under --cache (resumable); the table goes to --out (JSON + MD).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from benchmarks.lab.er_cache import (
    confidence_scores,
    evidence_rows_cached,
    head_scores,
    is_embedded_evidence_prm,
    sample_solutions,
    score_solutions,
)
from benchmarks.lab.er_metrics import (
    Picker,
    best_of_n,
    chain_hash_scores,
    checker_vote,
    group_accuracy,
    majority,
    random_sample,
    ranking,
    step_f1,
    weighted_best_of_n,
)
from benchmarks.lab.results import write_result
from benchmarks.report import bootstrap_interval
from reasoner.synthetic import load_split


# ---- the table ------------------------------------------------------------------------------------
def verifier_scores(
    args: argparse.Namespace, problems: list, samples: dict, cache: Path
) -> dict[str, dict[str, list[list[float]]]]:
    """Step scores of every sample under each --prms PRM (evidence PRMs on the embedded policy
    from the shared cached evidence rows) and, with --likelihood, the untrained baselines."""
    rows_path = cache / "evidence-rows.jsonl"
    scores = {}
    for name, path in args.prms.items():
        if is_embedded_evidence_prm(path):
            rows = evidence_rows_cached(problems, samples, rows_path)
            scores[name] = head_scores(path, problems, samples, rows)
        else:
            path_cache = cache / f"scores-{name}.jsonl"
            scores[name] = score_solutions(path, problems, samples, path_cache, args.threads)
    if args.likelihood:
        rows = evidence_rows_cached(problems, samples, rows_path)
        scores["policy likelihood"] = confidence_scores(problems, samples, rows, "lp_mean")
        scores["policy min token gap"] = confidence_scores(problems, samples, rows, "gap_min")
    return scores


def _row(method: str, prm: str, agg: str, n: int, accs: list[float], coverage: float, groups: int):
    """One table row: mean accuracy over problems with its bootstrap 95% CI."""
    lo, hi = bootstrap_interval(accs)
    return {
        "method": method,
        "prm": prm,
        "aggregation": agg,
        "n": n,
        "accuracy": mean(accs),
        "ci95": [lo, hi],
        "coverage": coverage,
        "problems": len(accs),
        "groups_per_problem": groups,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Sample (or reuse the cache), score, and build the report: table rows, step F1, ranking."""
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    problems = load_split("test")[args.offset : args.offset + args.problems]
    samples = sample_solutions(problems, args.max_n, args.seed, cache / "samples.jsonl")
    scores = verifier_scores(args, problems, samples, cache)
    none = {p.id: [[] for _ in samples[p.id]["samples"]] for p in problems}

    def add(method: str, prm: str, agg: str, n: int, pick: Picker, sc: dict) -> None:
        per = [group_accuracy(samples[p.id]["samples"], sc[p.id], n, pick) for p in problems]
        coverage = mean(c for _, c in per)
        rows.append(_row(method, prm, agg, n, [a for a, _ in per], coverage, args.max_n // n))

    greedy = [float(samples[p.id]["greedy"]["correct"]) for p in problems]
    rows = [_row("greedy", "-", "-", 1, greedy, mean(greedy), 1)]
    control = chain_hash_scores(problems, samples)
    for n in args.budgets:
        add("random sample", "-", "-", n, random_sample, none)
        add("majority", "-", "-", n, majority, none)
        add("equation checker + vote", "exact", "-", n, checker_vote, none)
        add("best_of_n", "content-blind control", "min", n, best_of_n("min"), control)
        for name in scores:
            for agg in args.aggregations:
                add("best_of_n", name, agg, n, best_of_n(agg), scores[name])
            add("weighted_best_of_n", name, "last", n, weighted_best_of_n("last"), scores[name])
    f1 = {name: step_f1(problems, samples, scores[name]) for name in scores}
    f1["equation checker (exact)"] = step_f1(problems, samples, None)
    return {
        "command": "python -m benchmarks.lab.er_experiment " + " ".join(sys.argv[1:]),
        "problems": f"arith test {args.offset}-{args.offset + len(problems) - 1}",
        "max_n": args.max_n,
        "prms": args.prms,
        "rows": rows,
        "step_f1": f1,
        "ranking": {
            **{name: ranking(problems, samples, scores[name]) for name in scores},
            "content-blind control": ranking(problems, samples, control),
        },
        "policy_tokens_per_sample": mean(
            c["tokens"] for p in problems for c in samples[p.id]["samples"]
        ),
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the table, step F1 and within-problem ranking."""
    lines = [
        "# ER-PRM experiment: best-of-N with PRMs from the same rollouts (arith test)",
        "",
        f"Command: `{report['command']}`  ",
        f"Problems: {report['problems']}; one sampling run of {report['max_n']} solutions per "
        "problem (temperature 1) scored by every PRM; a budget-n row averages the "
        f"{report['max_n']}/n disjoint groups of n solutions; 95% CI: bootstrap over problems. "
        "best_of_n picks among solutions that reached an answer.",
        "",
        "| method | PRM | agg | N | accuracy % (95% CI) | coverage % |",
        "|---|---|---|---:|---|---:|",
    ]
    for r in report["rows"]:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['method']} | {r['prm']} | {r['aggregation']} | {r['n']} | "
            f"{100 * r['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f}) | "
            f"{100 * r['coverage']:.1f} |"
        )
    lines += [
        "",
        "## Step-level F1 (ProcessBench style, first 4 solutions per problem, exact labels)",
        "",
        "| PRM | n | acc. erroneous % | acc. correct % | F1 % (t=0.5) | best F1 % (t) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in report["step_f1"].items():
        best = f"{100 * m['best_f1']:.1f} ({m['best_threshold']})" if "best_f1" in m else "-"
        lines.append(
            f"| {name} | {m['n']} | {100 * m['error_accuracy']:.1f} | "
            f"{100 * m['correct_accuracy']:.1f} | {100 * m['f1']:.1f} | {best} |"
        )
    lines += [
        "",
        "## Within-problem ranking (first 16 solutions per problem, answered ones)",
        "",
        "Pair accuracy: share of (right, wrong) solution pairs of the same problem that the PRM "
        "orders right (0.5 = chance); AUC: the min score of right vs wrong solutions pooled over "
        "all problems (rewards knowing which problems are easy). The content-blind control gives "
        "each distinct chain a hash-uniform score.",
        "",
        "| PRM | pairs | pair acc. (min) | pair acc. (last) | AUC across problems |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in report.get("ranking", {}).items():
        lines.append(
            f"| {name} | {m['pairs']} | {m['pair_acc_min']:.3f} | {m['pair_acc_last']:.3f} | "
            f"{m['auc_across_problems'] or float('nan'):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the experiment, write --out/summary.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prms", default="", help="name=path,... (PRM checkpoints)")
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--max-n", type=int, default=64)
    ap.add_argument("--budgets", default="4,16,64")
    ap.add_argument("--aggregations", default="min,last")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--likelihood",
        action="store_true",
        help="add the untrained policy-confidence baselines (step likelihood, min token gap)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/er_experiment")
    ap.add_argument("--out", default="benchmarks/results/er_experiment")
    args = ap.parse_args(argv)
    args.prms = dict(item.split("=", 1) for item in args.prms.split(",")) if args.prms else {}
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.aggregations = args.aggregations.split(",")
    bad = [b for b in args.budgets if b < 1 or args.max_n % b]
    if bad:
        ap.error(f"budgets {bad} must divide --max-n {args.max_n}")
    torch.set_num_threads(args.threads)
    report = run(args)
    write_result(Path(args.out) / "summary.json", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

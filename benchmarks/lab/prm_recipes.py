"""Can a PRM fine-tuned from the tiny policy learn to check a step? A recipe comparison.

The ER experiment found every tiny PRM at chance when ranking the solutions of one problem, even
one trained on oracle step labels. This isolates the learner from the labels: every recipe here is
trained on the oracle "exact" labels (first wrong step from the arith checker) of the policy's own
samples, so a recipe that fails cannot blame noisy Monte Carlo values. Recipes vary how the PRM is
built from the policy (reasoner.training.prm_init): appended identity layers (depth past the layer
that forms the policy's predictions), an untied readout, a frozen base, slip-negative minimal pairs.

Subcommands (run in this order; each resumes or reuses what exists):
  sample  --split train --offset 2000 --problems 800 --out runs/prm_recipes/train.jsonl
  sample  --split test --offset 0 --problems 150 --out runs/prm_recipes/test.jsonl
  train   NAME '{"extra_layers": 2, ...}'      (LMPRMTrainConfig overrides; label "exact")
  report  --runs NAME,NAME,...                  -> benchmarks/results/prm_recipes.{json,md}

Metrics, on held-out arith TEST problems (never trained on): within-problem pair accuracy (a right
vs a wrong solution of the same problem, min-aggregated step scores; 0.5 = chance), minimal-pair
accuracy (a right step vs the same step with one result slipped), and pooled step AUC vs the exact
labels; the policy's own step likelihood is the reference row.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.lab.likelihood import likelihood_scorer
from benchmarks.lab.pairs import Pair, minimal_pairs, pair_accuracy
from benchmarks.lab.results import write_result
from reasoner.api import load_policy, load_prm
from reasoner.datasets import load_dataset
from reasoner.grading import extract_answer, grade
from reasoner.jsonl import read_jsonl
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.models.resolve import resolve_model_path
from reasoner.synthetic import first_error
from reasoner.training.prm_config import LMPRMTrainConfig
from reasoner.training.prm_metrics import pairwise_accuracy, roc_auc
from reasoner.training.prm_trainer import train_prm
from reasoner.training.records import LabeledSolution, append_records, read_records

ROOT = Path("runs/prm_recipes")
Scorer = Callable[[list[tuple[str, list[str]]]], list[list[float]]]


def cmd_sample(args: argparse.Namespace) -> None:
    """K temperature-1 policy samples per problem with their exact first wrong step."""
    out = Path(args.out)
    done = {r.problem_id for r in read_records(out)} if out.exists() else set()
    policy = load_policy("embedded", threads=args.threads)
    fmt = policy.step_format
    problems = load_dataset("arith", args.split)[args.offset : args.offset + args.problems]
    for start in range(0, len(problems), 32):
        chunk = [p for p in problems[start : start + 32] if p.id not in done]
        if not chunk:
            continue
        seeds = [1000 + args.offset + start + i for i in range(len(chunk))]
        outs = policy.generate(
            [
                GenRequest(policy.encode_prompt(p.text), args.samples, s, "end", 1.0)
                for p, s in zip(chunk, seeds)
            ]
        )
        records = []
        for p, conts in zip(chunk, outs):
            for k, c in enumerate(conts):
                steps = [s.text for s in c.steps]
                if not steps:
                    continue
                text = fmt.join_steps(steps)
                answer = extract_answer(text)
                ok = bool(c.finished and answer is not None and grade(answer, p.answer))
                records.append(
                    LabeledSolution(
                        problem_id=p.id,
                        problem=p.text,
                        gold=p.answer,
                        steps=steps,
                        outcomes=[[float(ok)]] * len(steps),  # no rollouts: exact labels only
                        correct=ok,
                        first_error=first_error(p, text),
                        metadata={"sample": k},
                    )
                )
        append_records(out, records)
        print(f"sampled {start + len(chunk)}/{len(problems)} problems", flush=True)


def cmd_train(args: argparse.Namespace) -> None:
    """Train one recipe (LMPRMTrainConfig overrides as JSON) on the exact labels of train.jsonl."""
    overrides = json.loads(args.overrides)
    cfg = LMPRMTrainConfig(
        **{
            "data": str(ROOT / "train.jsonl"),
            "out_dir": str(ROOT / args.name),
            "label": "exact",
            "eta": None,
            "epochs": 1.0,
            "lr": 1e-3,
            "threads": args.threads,
            **overrides,
        }
    )
    print(train_prm(cfg, progress=False))


def evaluate_scorer(
    score_chains: Scorer, records: list[LabeledSolution], pairs: list[Pair]
) -> dict[str, Any]:
    """Within-problem pair accuracy, minimal-pair accuracy and step AUC for one scorer."""
    scores = score_chains([(r.problem, r.steps) for r in records])
    examples = [{"problem": r.problem_id, "correct": r.correct} for r in records]
    steps, truth = [], []
    for r, s in zip(records, scores):
        steps += s
        truth += r.values("exact")
    slip_scores = score_chains([(p, c) for p, right, wrong in pairs for c in (right, wrong)])
    return {
        "within_problem_pair_acc_min": pairwise_accuracy(examples, [min(s) for s in scores]),
        "minimal_pair_acc": pair_accuracy(
            [s[-1] for s in slip_scores[0::2]], [s[-1] for s in slip_scores[1::2]]
        ),
        "step_auc_vs_exact": roc_auc(steps, truth),
    }


RECIPE_KEYS = (
    "label",
    "eta",
    "extra_layers",
    "untie_embeddings",
    "freeze_base",
    "slip_negatives",
    "lr",
    "epochs",
    "limit",
)


def _checkpoint(name: str) -> Path:
    """A run directory of this script (its final checkpoint), or any PRM checkpoint path."""
    if name == "embedded":
        return resolve_model_path("embedded-lm", "prm")
    path = Path(name) if "/" in name else ROOT / name
    return path / "final" if (path / "final").is_dir() else path


def describe_run(name: str) -> dict[str, Any]:
    """The recipe and training length of a run (from its train_config/log, else the checkpoint)."""
    ckpt = _checkpoint(name)
    run = ckpt.parent if ckpt.name == "final" else None
    if run is not None and (run / "train_config.json").is_file():
        cfg = json.loads((run / "train_config.json").read_text())
        log = read_jsonl(run / "log.jsonl")
        return {"recipe": {k: cfg.get(k) for k in RECIPE_KEYS}, "train_steps": log[-1]["step"]}
    info = ckpt / "prm_training.json"
    meta = json.loads(info.read_text()) if info.is_file() else {}
    return {
        "recipe": {k: meta.get(k) for k in RECIPE_KEYS if k in meta},
        "train_steps": meta.get("steps"),
    }


def prm_scorer(name: str) -> Scorer:
    """A chain scorer by a PRM checkpoint's step scores."""
    prm = load_prm(_checkpoint(name))
    return lambda chains: prm.score([ScoreRequest(p, s) for p, s in chains])[0]


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        "# PRM recipes on oracle step labels: can the tiny PRM learn to check a step?",
        "",
        f"Command: `{report['command']}`; eval: {report['eval']}. 0.5 = chance for both pair columns.",
        "Every recipe is trained on the exact (oracle) step labels of 8 policy samples x 800 arith train "
        "problems (`sample --split train --offset 2000 --problems 800`; 10% held out by problem).",
        "",
        "| scorer | recipe | steps | within-problem pair acc. (min) | minimal-pair acc. | step AUC vs exact |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in report["rows"].items():
        recipe = ", ".join(
            f"{k}={v}" for k, v in row["recipe"].items() if v not in (None, 0, False)
        )
        lines.append(
            f"| {name} | {recipe or '-'} | {row.get('train_steps', '-')} | "
            f"{row['within_problem_pair_acc_min']:.3f} | {row['minimal_pair_acc']:.3f} | "
            f"{row['step_auc_vs_exact']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def cmd_report(args: argparse.Namespace) -> None:
    """Evaluate the policy's likelihood and each run on test.jsonl; write --out.{json,md}."""
    torch.set_num_threads(args.threads)
    records = [r for r in read_records(ROOT / "test.jsonl") if r.steps]
    pairs = minimal_pairs(records, args.pairs)
    by_likelihood = likelihood_scorer(load_policy("embedded"))
    rows = {
        "policy likelihood (no training)": {
            "recipe": {},
            **evaluate_scorer(by_likelihood, records, pairs),
        }
    }
    for name in args.runs.split(","):
        rows[Path(name).name] = {
            **describe_run(name),
            **evaluate_scorer(prm_scorer(name), records, pairs),
        }
        print(name, rows[Path(name).name], flush=True)
    problems = len({r.problem_id for r in records})
    report = {
        "command": "python -m benchmarks.lab.prm_recipes " + " ".join(sys.argv[1:]),
        "eval": f"{len(records)} policy samples of {problems} arith test problems; {len(pairs)} minimal pairs",
        "rows": rows,
    }
    write_result(Path(args.out).with_suffix(".json"), report, markdown(report))


def main(argv: list[str] | None = None) -> int:
    """Dispatch the sample / train / report subcommands."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sample")
    p.add_argument("--split", default="train")
    p.add_argument("--offset", type=int, default=2000)
    p.add_argument("--problems", type=int, default=800)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "train.jsonl"))
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("train")
    p.add_argument("name")
    p.add_argument("overrides", nargs="?", default="{}")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("report")
    p.add_argument("--runs", required=True)
    p.add_argument("--pairs", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/prm_recipes")
    p.set_defaults(func=cmd_report)
    args = ap.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

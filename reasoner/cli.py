"""The `reasoner` command line: solve, bench, train-policy, label, train-prm, eval-prm."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reasoner.types import ReasonerError


def _csv(kind=str):
    def parse(text: str):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"bad comma-separated list {text!r}: {err}") from err

    return parse


def _options(pairs: list[str]) -> dict:
    """--option key=value pairs; values parsed as JSON when possible (numbers, true/false)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ReasonerError(f"--option expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def print_tree(tree) -> None:
    """An indented view of the step tree: PRM score, visits, terminal answer, step text."""

    def walk(node_id: int, indent: int) -> None:
        node = tree[node_id]
        if node.parent is not None:
            score = f"{node.prm_score:.3f}" if node.prm_score is not None else "  -  "
            end = f"  => {node.answer}" if node.terminal else ""
            visits = f" v={node.visits}" if node.visits else ""
            print(f"{'  ' * indent}[{score}{visits}] {node.text[:90]}{end}")
        for child in node.children:
            walk(child, indent + (node.parent is not None))

    walk(0, 0)


def cmd_solve(args: argparse.Namespace) -> int:
    from reasoner.api import Reasoner

    reasoner = Reasoner(
        strategy=args.strategy,
        budget=args.budget,
        policy=args.policy,
        prm=args.prm,
        backend=args.backend,
        seed=args.seed,
        temperature=args.temperature,
        aggregation=args.aggregation,
        strategy_options=_options(args.option),
    )
    sol = reasoner.solve(args.problem)
    if args.json:
        print(sol.to_json(include_tree=args.tree))
        return 0
    if args.show_tree and sol.tree is not None:
        print_tree(sol.tree)
        print()
    for i, step in enumerate(sol.steps):
        score = f" [{sol.step_scores[i]:.3f}]" if i < len(sol.step_scores) else ""
        print(f"step {i + 1}{score}: {step}")
    s = sol.stats
    print(f"answer: {sol.answer}  (score {sol.score}, {sol.reason})")
    print(
        f"cost: {s.policy_tokens} policy tokens, {s.prm_tokens} PRM tokens, {s.flops:.3g} FLOPs, {s.wall_seconds:.2f} s, {s.nodes} nodes"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.bench.run import run_bench
    from benchmarks.config import UNSET, load_config
    from benchmarks.report import terminal_table

    if args.config and args.suite and args.config != args.suite:
        raise ReasonerError(
            f"two suites given ({args.config!r} and --suite {args.suite!r}); give one"
        )
    overrides = {}
    for pair in args.set or []:
        if "=" not in pair:
            raise ReasonerError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
        if overrides[key.strip()] is None:  # --set limit=null: really set None
            overrides[key.strip()] = UNSET
    if args.limit == "all":  # every problem of the split
        args.limit = UNSET
    flags = {
        "dataset": args.dataset,
        "split": args.split,
        "data_dir": args.data_dir,
        "limit": args.limit,
        "offset": args.offset,
        "policy": args.policy,
        "prms": args.prms,
        "backend": args.backend,
        "step_format": args.step_format,
        "strategies": args.strategies,
        "budgets": args.budgets,
        "aggregations": args.aggregations,
        "seeds": args.seeds,
        "temperature": args.temperature,
        "subsample": args.subsample,
        "out_dir": args.out,
        "batch_size": args.batch_size,
        "save_trees": True if args.trees else None,
        "retry_errors": True if args.retry_errors else None,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = load_config(args.config or args.suite, overrides)
        data = run_bench(cfg, argv=["reasoner", *sys.argv[1:]], progress=not args.quiet)
    except OSError as err:  # an unwritable output dir, a vanished file: an error, not a traceback
        raise ReasonerError(f"{type(err).__name__}: {err}") from err
    out = Path(cfg.out_dir)
    print(f"\n{cfg.name}: {cfg.dataset} {cfg.split}, {data['meta']['problems']['used']} problems")
    print(terminal_table(data["cells"]))
    if data["combined_seeds"]:
        print("\nseeds combined:")
        print(terminal_table(data["combined_seeds"]))
    if any(c.get("subsampled_from") for c in data["cells"]):
        print("* computed from one sampling run at the largest budget (see summary.md)")
    if data["errors"]:
        print(f"{data['errors']} rows recorded an error (counted as wrong; listed in summary.md)")
    print(
        f"\nresults: {out / 'results.jsonl'}\nsummary: {out / 'summary.md'}\nplot:    {out / 'accuracy.png'}"
    )
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    from reasoner.training.policy_trainer import PolicyTrainConfig, train_policy

    overrides = {
        "out_dir": args.out,
        "steps": args.steps,
        "seed": args.seed,
        "threads": args.threads,
    }
    if args.config:
        cfg = PolicyTrainConfig.from_toml(args.config, **overrides)
    else:
        cfg = PolicyTrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    final = train_policy(cfg)
    print(f"policy checkpoint: {final}")
    if args.install:
        from reasoner.training.install import install_embedded

        print(f"installed as the embedded policy: {install_embedded(final, 'policy')}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from reasoner.training.labeling import LabelConfig, run_labeling

    overrides = {
        "out": args.out,
        "problems": args.problems,
        "samples": args.samples,
        "rollouts": args.rollouts,
        "policy": args.policy,
        "seed": args.seed,
    }
    cfg = (
        LabelConfig.from_toml(args.config, **overrides)
        if args.config
        else LabelConfig(**{k: v for k, v in overrides.items() if v is not None})
    )
    out = run_labeling(cfg, progress=not args.quiet)
    print(f"labeled rollouts: {out}")
    return 0


def cmd_train_prm(args: argparse.Namespace) -> int:
    from reasoner.training.prm_trainer import PRMTrainConfig, train_prm

    overrides = {
        "data": args.data,
        "out_dir": args.out,
        "label": args.label,
        "eta": args.eta,
        "base": args.base,
        "seed": args.seed,
        "epochs": args.epochs,
        "threads": args.threads,
        "kind": args.kind,
    }
    cfg = (
        PRMTrainConfig.from_toml(args.config, **overrides)
        if args.config
        else PRMTrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    )
    final = train_prm(cfg, progress=not args.quiet)
    print(f"PRM checkpoint: {final}")
    if args.install:
        from reasoner.training.install import install_embedded

        # the evidence PRM is prm="embedded"; an LM PRM is prm="embedded-lm"
        slot, spec = ("prm", "embedded") if cfg.kind == "evidence" else ("prm-lm", "embedded-lm")
        print(f"installed as prm={spec!r}: {install_embedded(final, slot)}")
    return 0


def cmd_eval_prm(args: argparse.Namespace) -> int:
    from reasoner.api import load_policy, load_prm
    from reasoner.prm_eval import (
        arith_cases,
        equation_checker_metrics,
        evaluate_prm,
        processbench_cases,
    )

    prm = load_prm(args.prm)
    report: dict = {"prm": args.prm, "threshold": args.threshold}
    if args.suite == "arith":
        from reasoner.synthetic import load_split

        problems = load_split("test")[: args.limit or 100]
        cases = arith_cases(
            load_policy(args.policy),
            problems,
            samples=args.samples,
            seed=args.seed,
            cache=args.cases,
        )
        report["arith"] = evaluate_prm(prm, cases, args.threshold)
        report["arith_equation_checker"] = equation_checker_metrics(cases)
    else:
        subsets = args.subsets or ["gsm8k", "math", "olympiadbench", "omnimath"]
        for subset in subsets:
            report[f"processbench/{subset}"] = evaluate_prm(
                prm, processbench_cases(subset, args.data_dir, args.limit), args.threshold
            )
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from reasoner.registry import available_strategies, get_strategy

    for name in available_strategies():
        cls = get_strategy(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        opts = ", ".join(f"{k}={v!r}" for k, v in cls.options.items())
        print(f"{name:20s} {doc}" + (f"  [options: {opts}]" if opts else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasoner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="solve one problem and print the chosen chain")
    p.add_argument("problem")
    p.add_argument("--strategy", default="best_of_n")
    p.add_argument("--budget", type=int, default=16)
    p.add_argument("--policy", default="embedded")
    p.add_argument("--prm", default="embedded")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--aggregation", default="min")
    p.add_argument("--option", action="append", help="strategy option key=value (repeatable)")
    p.add_argument("--json", action="store_true", help="print the Solution as JSON")
    p.add_argument("--tree", action="store_true", help="with --json: include the whole tree")
    p.add_argument("--show-tree", action="store_true", help="print the whole scored step tree")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser(
        "bench",
        help="compare strategies/PRMs on a suite (resumable)",
        description="Run a benchmark suite (a TOML file, by path or by name: arith, arith_full, "
        "gsm8k, math500, math); flags override the file. Without a suite: the arith suite. "
        "Rerunning the same command resumes; results go to --out (default runs/bench/NAME).",
    )
    p.add_argument("config", nargs="?", help="suite name or TOML file (benchmarks/suites/*.toml)")
    p.add_argument("--suite", help="suite name or TOML file (same as the positional argument)")
    p.add_argument("--dataset", help="arith, gsm8k, math500 or math")
    p.add_argument("--split")
    p.add_argument("--data-dir", help="directory of the data files (default: $REASONER_DATA)")

    def limit_arg(text: str):
        if text.lower() in ("all", "none"):
            return "all"
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer or 'all', got {text!r}"
            ) from None

    p.add_argument(
        "--limit",
        type=limit_arg,
        help="use the first LIMIT problems (after --offset); 'all' for the whole split",
    )
    p.add_argument("--offset", type=int)
    p.add_argument("--policy", help="'embedded' or a checkpoint directory")
    p.add_argument("--prms", type=_csv(), help="comma-separated PRM specs; 'none' for no PRM")
    p.add_argument("--backend", choices=["hf", "vllm"])
    p.add_argument("--step-format", help="step format preset or .toml for the policy")
    p.add_argument("--strategies", type=_csv())
    p.add_argument("--budgets", type=_csv(int))
    p.add_argument("--aggregations", type=_csv())
    p.add_argument("--seeds", type=_csv(int))
    p.add_argument("--temperature", type=float)
    p.add_argument(
        "--subsample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="best-of-N family curves from one run at the largest budget",
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument("--out", help="output directory (default runs/bench/NAME)")
    p.add_argument("--trees", action="store_true", help="store full trees in results.jsonl")
    p.add_argument("--retry-errors", action="store_true", help="rerun rows that recorded an error")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any suite key (VALUE parsed as JSON when possible); repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train-policy", help="train the tiny arith policy from scratch")
    p.add_argument("--config", help="TOML with PolicyTrainConfig fields")
    p.add_argument("--out")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads (the result does not depend on it)")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the result into the package as the embedded policy",
    )
    p.set_defaults(func=cmd_train_policy)

    p = sub.add_parser(
        "label", help="rollout-label the policy's solutions for PRM training (resumable)"
    )
    p.add_argument("--config", help="TOML with LabelConfig fields (reasoner/configs/label.toml)")
    p.add_argument("--out")
    p.add_argument("--policy")
    p.add_argument("--problems", type=int)
    p.add_argument("--samples", type=int, help="K solutions per problem")
    p.add_argument("--rollouts", type=int, help="N completions per step prefix")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("train-prm", help="train a PRM on labeled rollouts (er/soft/hard/orm/exact)")
    p.add_argument("--config", help="TOML with PRMTrainConfig fields (reasoner/configs/prm.toml)")
    p.add_argument("--data")
    p.add_argument("--out")
    p.add_argument("--base", help="HF causal LM to start from ('embedded' = the shipped policy)")
    p.add_argument(
        "--label",
        help="er | soft | hard | orm | exact (oracle step truth, synthetic suites), or er-ETA",
    )
    p.add_argument("--eta", type=float)
    p.add_argument(
        "--kind", choices=["lm", "evidence"], help="fine-tune the base (lm) or an evidence head"
    )
    p.add_argument("--epochs", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the result into the package: an evidence PRM as prm='embedded', "
        "an LM PRM as prm='embedded-lm'",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_prm)

    p = sub.add_parser(
        "eval-prm", help="ProcessBench-style step evaluation (arith exact labels or ProcessBench)"
    )
    p.add_argument("--prm", default="embedded")
    p.add_argument("--suite", default="arith", choices=["arith", "processbench"])
    p.add_argument("--subsets", type=_csv(), help="ProcessBench subsets (default: all four)")
    p.add_argument(
        "--policy", default="embedded", help="arith: the policy whose samples are judged"
    )
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument(
        "--cases", help="arith: JSONL cache of the sampled cases (same cases for every PRM)"
    )
    p.add_argument("--data-dir")
    p.add_argument("--out", help="write the JSON report here")
    p.set_defaults(func=cmd_eval_prm)

    p = sub.add_parser("strategies", help="list the registered strategies")
    p.set_defaults(func=cmd_strategies)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ReasonerError as err:
        print(f"reasoner: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "reasoner: interrupted (finished work is saved; rerun the same command to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

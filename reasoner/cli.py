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
        **_options(args.option),
    )
    sol = reasoner.solve(args.problem)
    if args.json:
        print(sol.to_json(include_tree=args.tree))
        return 0
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
    from benchmarks.config import BenchConfig
    from benchmarks.report import markdown_table
    from benchmarks.runner import run_bench

    overrides = {
        "suite": args.suite,
        "split": args.split,
        "data_dir": args.data_dir,
        "limit": args.limit,
        "policy": args.policy,
        "prms": args.prms,
        "backend": args.backend,
        "strategies": args.strategies,
        "budgets": args.budgets,
        "aggregations": args.aggregations,
        "seeds": args.seeds,
        "out_dir": args.out,
        "batch_size": args.batch_size,
        "save_trees": True if args.trees else None,
    }
    if args.config:
        cfg = BenchConfig.from_toml(args.config, overrides)
    else:
        cfg = BenchConfig.from_dict({}, overrides=overrides)
    data = run_bench(cfg, argv=["reasoner", *sys.argv[1:]], progress=not args.quiet)
    print(markdown_table(data["cells"]))
    out = Path(cfg.out_dir)
    print(
        f"\nresults: {out / 'results.jsonl'}\nsummary: {out / 'summary.md'}\nplot:    {out / 'accuracy.png'}"
    )
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    from reasoner.training.policy_trainer import PolicyTrainConfig, train_policy

    overrides = {"out_dir": args.out, "steps": args.steps, "seed": args.seed, "threads": args.threads}
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
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("bench", help="compare strategies/PRMs on a suite (resumable)")
    p.add_argument("config", nargs="?", help="a suite TOML file (benchmarks/suites/*.toml)")
    p.add_argument("--suite")
    p.add_argument("--split")
    p.add_argument("--data-dir")
    p.add_argument("--limit", type=int)
    p.add_argument("--policy")
    p.add_argument("--prms", type=_csv(), help="comma-separated PRM specs; 'none' for no PRM")
    p.add_argument("--backend", choices=["hf", "vllm"])
    p.add_argument("--strategies", type=_csv())
    p.add_argument("--budgets", type=_csv(int))
    p.add_argument("--aggregations", type=_csv())
    p.add_argument("--seeds", type=_csv(int))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--out")
    p.add_argument("--trees", action="store_true", help="store full trees in results.jsonl")
    p.add_argument("--quiet", action="store_true")
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

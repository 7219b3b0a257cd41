"""The `reasoner` command line: solve, bench, train-policy, label, train-prm, eval-prm.

Each subcommand imports what it runs inside its cmd_* function, on purpose: those modules pull in
torch and transformers, and importing all of them up front makes every command, `reasoner
strategies` and `--help` included, take 5.5 s instead of 0.2 s (measured on 2 CPU cores).
Config flags reach the configs through one helper, `flag_overrides`. Long because every
subcommand's flags are declared here, in one parser, so `--help` and the errors agree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from reasoner.config_io import SET_NONE, Config
from reasoner.plugins import import_sibling
from reasoner.scaleout.spec import add_executor_args
from reasoner.types import Problem, ReasonerError

C = TypeVar("C", bound=Config)


def _csv(kind: type = str) -> Any:
    """An argparse type: a comma-separated list of `kind` values."""

    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"bad comma-separated list {text!r}: {err}") from err

    return parse


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors: `reasoner: error: solve: ...` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("reasoner").strip()
        where = f"{command}: " if command else ""
        help_hint = f"`{self.prog} --help`"
        self.exit(2, f"reasoner: error: {where}{message} (see {help_hint})\n")


def problem_text(text: str) -> str:
    """The problem given on the command line, checked before any model loads: bytes that are not
    UTF-8 (Python passes them on as lone surrogates) and an empty text are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raw = os.fsencode(text)  # the bytes as given
        try:
            raw.decode("utf-8")
            detail = f"character {err.start} is a lone surrogate"
        except UnicodeDecodeError as bad:
            detail = f"byte {raw[bad.start]:#04x} at offset {bad.start}"
        raise ReasonerError(f"the problem is not valid UTF-8 text ({detail})") from None
    Problem(text=text)  # the same checks as the API's (an empty text says so)
    return text


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """KEY=VALUE pairs of a repeatable flag; values parsed as JSON when possible (numbers,
    true/false, null, lists, tables), else kept as strings."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ReasonerError(f"{flag} expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def flag_overrides(
    args: argparse.Namespace, fields: dict[str, str], pairs: list[str] | None = None
) -> dict[str, Any]:
    """The config overrides of the flags that were given, for the config loader.

    `fields` maps a flag's argparse dest to its config key; a flag left at None was not given.
    A flag that parsed to SET_NONE (`--limit all`) sets its key to None. `pairs` are `--set
    KEY=VALUE` overrides of any key (`--set key=null` sets None); the named flags win over them.
    """
    overrides = {k: SET_NONE if v is None else v for k, v in parse_pairs(pairs, "--set").items()}
    for dest, key in fields.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[key] = value
    return overrides


def load_with_flags(cls: type[C], path: str | None, overrides: dict[str, Any]) -> C:
    """The config of `cls` from the TOML file `path` (else the defaults), with the overrides."""
    if path:
        return cls.from_toml(path, overrides)
    return cls.from_dict({}, source="defaults", overrides=overrides)


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
    """One problem: print the chosen chain, its step scores and what it cost."""
    problem = problem_text(args.problem)  # before torch is even imported
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
        step_format=args.step_format,
        strategy_options=parse_pairs(args.option, "--option"),
    )
    sol = reasoner.solve(problem)
    if args.view:  # the whole scored tree as one self-contained HTML file
        from reasoner.viewer import solution_entry, write_html

        print(f"view: {write_html([solution_entry(sol)], args.view)}", file=sys.stderr)
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
    detail = f"{sol.reason}: {sol.error}" if sol.error else sol.reason
    print(f"answer: {sol.answer}  (score {sol.score}, {detail})")
    print(
        f"cost: {s.policy_tokens} policy tokens, {s.prm_tokens} PRM tokens, {s.flops:.3g} FLOPs, {s.wall_seconds:.2f} s, {s.nodes} nodes"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """A benchmark suite with flag overrides: run (or resume) it, print the table."""
    import_sibling("benchmarks")  # the project's, not a benchmarks/ folder in the working dir
    from benchmarks.bench.run import run_bench
    from benchmarks.config import load_config
    from benchmarks.report import terminal_table

    if args.config and args.suite and args.config != args.suite:
        raise ReasonerError(
            f"two suites given ({args.config!r} and --suite {args.suite!r}); give one"
        )
    overrides = flag_overrides(args, BENCH_FLAGS, args.set)
    cfg = load_config(args.config or args.suite, overrides)
    with executor_of(args) as executor:
        data = run_bench(
            cfg, argv=["reasoner", *sys.argv[1:]], progress=not args.quiet, executor=executor
        )
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
    if cfg.save_trees or cfg.subsample:  # what `reasoner replay` and `reasoner view` read
        from benchmarks.bench.rescore import saved_tree_bytes

        size = saved_tree_bytes(out)
        print(
            f"trees:   {size['rows_with_tree']} rows with a saved tree, "
            f"{size['tree_bytes'] / 1e6:.2f} MB in results.jsonl "
            f"({size['results_bytes'] / 1e6:.2f} MB in all), "
            f"{size['sample_tree_bytes'] / 1e6:.2f} MB of sampling trees in samples.jsonl"
        )
    if data["errors"] and data["errors"] >= sum(c["n"] for c in data["cells"]):
        raise ReasonerError(
            f"every row of this run recorded an error, so nothing was measured (the errors are "
            f"listed in {out / 'summary.md'}; fix the cause, then rerun with --retry-errors)"
        )
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    """Train the tiny policy from a config (and flags); optionally install it."""
    from reasoner.training.install import install_embedded
    from reasoner.training.policy_trainer import PolicyTrainConfig, train_policy

    overrides = flag_overrides(args, TRAIN_POLICY_FLAGS)
    cfg = load_with_flags(PolicyTrainConfig, args.config, overrides)
    final = train_policy(cfg)
    print(f"policy checkpoint: {final}")
    if args.install:
        print(f"installed as the embedded policy: {install_embedded(final, 'policy')}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    """Rollout-label the policy's solutions for PRM training (resumable)."""
    from reasoner.training.labeling import LabelConfig, run_labeling

    cfg = load_with_flags(LabelConfig, args.config, flag_overrides(args, LABEL_FLAGS))
    with executor_of(args) as executor:
        out = run_labeling(cfg, progress=not args.quiet, executor=executor)
    print(f"labeled rollouts: {out}")
    return 0


def cmd_train_prm(args: argparse.Namespace) -> int:
    """Train a PRM of the config's kind (evidence or lm); optionally install it."""
    from reasoner.training.distributed import world_from_env
    from reasoner.training.install import install_embedded
    from reasoner.training.prm_trainer import PRMTrainConfig, train_prm

    cfg = load_with_flags(PRMTrainConfig, args.config, flag_overrides(args, TRAIN_PRM_FLAGS))
    final = train_prm(cfg, progress=not args.quiet)
    if not world_from_env().is_main:  # under torchrun: rank 0 reports and installs
        return 0
    print(f"PRM checkpoint: {final}")
    if args.install:
        # the evidence PRM is prm="embedded"; an LM PRM is prm="embedded-lm"
        slot, spec = ("prm", "embedded") if cfg.kind == "evidence" else ("prm-lm", "embedded-lm")
        print(f"installed as prm={spec!r}: {install_embedded(final, slot)}")
    return 0


def cmd_raft(args: argparse.Namespace) -> int:
    """PRM-guided rejection-sampling fine-tuning (resumable); installs only with --install."""
    import_sibling("benchmarks")  # the evaluation is `reasoner bench`'s
    from benchmarks.raft_study import evaluate_policy
    from reasoner.training.install import install_embedded
    from reasoner.training.raft import RaftConfig, run_raft

    cfg = load_with_flags(RaftConfig, args.config, flag_overrides(args, RAFT_FLAGS, args.set))
    summary = run_raft(cfg, evaluate_policy, progress=not args.quiet)
    for row in summary["rows"]:
        vote = row[f"majority{cfg.eval_majority_n}_accuracy"]
        print(
            f"{row['selector']} round {row['round']}: greedy {100 * row['greedy_accuracy']:.1f} % "
            f"({100 * row['greedy_ci_low']:.1f}-{100 * row['greedy_ci_high']:.1f}), majority@"
            f"{cfg.eval_majority_n} " + ("-" if vote is None else f"{100 * vote:.1f} %")
        )
    print(f"summary: {Path(cfg.out_dir) / 'summary.json'}\npolicy: {summary['policy']}")
    if args.install:
        if summary["policy"] == cfg.policy:
            raise ReasonerError("raft: no round changed the policy; nothing to install")
        print(f"installed as the embedded policy: {install_embedded(summary['policy'], 'policy')}")
    return 0


def cmd_eval_prm(args: argparse.Namespace) -> int:
    """ProcessBench-style step F1 of a PRM, on arith samples or ProcessBench."""
    from reasoner.api import load_policy, load_prm
    from reasoner.prm_eval import (
        EvalJob,
        arith_cases,
        equation_checker_metrics,
        evaluate_prm,
        processbench_cases,
    )
    from reasoner.synthetic import load_split

    check_eval_args(args)
    with executor_of(args) as executor:
        # on Ray every worker loads the models named here; locally they load in this process
        sharded = executor if executor.kind != "local" else None
        job = EvalJob(args.policy, args.prm, args.samples, args.seed) if sharded else None
        prm = load_prm(args.prm) if sharded is None else args.prm
        report: dict = {"prm": args.prm, "threshold": args.threshold}
        if args.suite == "arith":
            problems = load_split("test")[: args.limit or 100]
            cases = arith_cases(
                load_policy(args.policy) if sharded is None else args.policy,
                problems,
                samples=args.samples,
                seed=args.seed,
                cache=args.cases,
                executor=sharded,
                job=job,
            )
            report["arith"] = evaluate_prm(prm, cases, args.threshold, sharded, job)
            report["arith_equation_checker"] = equation_checker_metrics(cases)
        else:
            subsets = args.subsets or ["gsm8k", "math", "olympiadbench", "omnimath"]
            for subset in subsets:
                cases = processbench_cases(subset, args.data_dir, args.limit)
                report[f"processbench/{subset}"] = evaluate_prm(
                    prm, cases, args.threshold, sharded, job
                )
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


def check_eval_args(args: argparse.Namespace) -> None:
    """eval-prm's numbers, before any model loads: counts >= 1, a threshold in [0, 1]."""
    if args.samples < 1:
        raise ReasonerError(f"eval-prm: --samples must be >= 1, got {args.samples}")
    if args.limit is not None and args.limit < 1:
        raise ReasonerError(f"eval-prm: --limit must be >= 1, got {args.limit}")
    if not (math.isfinite(args.threshold) and 0.0 <= args.threshold <= 1.0):
        raise ReasonerError(f"eval-prm: --threshold must be in [0, 1], got {args.threshold}")


def executor_of(args: argparse.Namespace) -> Any:
    """The executor the --executor flags name (checked before any model loads)."""
    from reasoner.scaleout import make_executor, spec_from_args

    return make_executor(spec_from_args(args))


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-score a bench run's saved trees with other PRMs / aggregations; no generation."""
    import_sibling("benchmarks")
    from benchmarks.bench.rescore_run import replay_run
    from benchmarks.report import terminal_table

    data = replay_run(
        args.run_dir,
        prms=args.prms,
        aggregations=args.aggregations,
        out=args.out,
        save_trees=args.save_trees,
        argv=["reasoner", *sys.argv[1:]],
        progress=not args.quiet,
    )
    out = Path(data["meta"]["config"]["out_dir"])
    print(
        f"\nreplay of {data['replay']['source']} ({data['replay']['policy_tokens']} policy tokens)"
    )
    print(terminal_table(data["cells"]))
    kinds = sorted({c["kind"] for c in data["replay"]["cells"].values()})
    for kind in kinds:
        print(f"{kind}: {data['replay']['kinds'][kind]}")
    print(f"\nresults: {out / 'results.jsonl'}\nsummary: {out / 'summary.md'}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Write a tree, a Solution or a bench run's trees as one self-contained HTML file."""
    from reasoner.viewer import default_view_path, load_entries, write_html

    entries = load_entries(args.source, args.problem)
    out = write_html(entries, args.out or default_view_path(args.source))
    print(f"view: {out} ({len(entries)} trees)")
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    """List the registered strategies with their options."""
    from reasoner.registry import available_strategies, get_strategy

    for name in available_strategies():
        cls = get_strategy(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        opts = ", ".join(f"{k}={v!r}" for k, v in cls.options.items())
        print(f"{name:20s} {doc}" + (f"  [options: {opts}]" if opts else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """An OpenAI-compatible endpoint; concurrent requests' searches advance in lockstep."""
    from reasoner.serve import ServeConfig, run_server

    cfg = ServeConfig(
        strategy=args.strategy,
        budget=args.budget,
        options=parse_pairs(args.option, "--option"),
        policy=args.policy,
        prm=args.prm,
        backend=args.backend,
        seed=args.seed,
        temperature=args.temperature,
        aggregation=args.aggregation,
        step_format=args.step_format,
        model_name=args.model_name,
        max_budget=args.max_budget,
        max_concurrent=args.max_concurrent,
    )
    run_server(cfg, args.host, args.port)
    return 0


# flag dest -> config key, per subcommand (what flag_overrides reads)
STEP_FORMAT_HELP = "a step format preset ('chat', 'arith', a PRM family's) or a .toml/.json file"
BENCH_FLAGS = {
    **{k: k for k in ("dataset", "split", "data_dir", "limit", "offset", "policy", "prms")},
    **{k: k for k in ("backend", "step_format", "strategies", "budgets", "aggregations")},
    **{k: k for k in ("seeds", "temperature", "subsample", "batch_size", "retry_errors")},
    "out": "out_dir",
    "trees": "save_trees",
}
TRAIN_POLICY_FLAGS = {"out": "out_dir", "steps": "steps", "seed": "seed", "threads": "threads"}
LABEL_FLAGS = {k: k for k in ("out", "problems", "samples", "rollouts", "policy", "seed")}
LABEL_FLAGS["step_format"] = "step_format"
LABEL_FLAGS["backend"] = "backend"
RAFT_FLAGS = {
    **{k: k for k in ("policy", "selector", "prm", "threshold", "rounds", "k", "prompts")},
    **{k: k for k in ("seed", "name", "threads", "cache_dir")},
    "out": "out_dir",
}
TRAIN_PRM_FLAGS = {
    **{k: k for k in ("data", "label", "eta", "base", "seed", "epochs", "threads", "kind")},
    "out": "out_dir",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = Parser(prog="reasoner", description=__doc__)
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
    p.add_argument("--step-format", help=STEP_FORMAT_HELP)
    p.add_argument("--option", action="append", help="strategy option key=value (repeatable)")
    p.add_argument("--json", action="store_true", help="print the Solution as JSON")
    p.add_argument("--tree", action="store_true", help="with --json: include the whole tree")
    p.add_argument("--show-tree", action="store_true", help="print the whole scored step tree")
    p.add_argument(
        "--view", metavar="FILE.html", help="write the tree as a self-contained HTML view"
    )
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

    def limit_arg(text: str) -> Any:
        if text.lower() in ("all", "none"):
            return SET_NONE  # every problem of the split
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
    p.add_argument("--step-format", help=STEP_FORMAT_HELP)
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
    p.add_argument(
        "--trees",
        "--save-trees",
        action="store_true",
        default=None,
        help="store full trees in results.jsonl (what `reasoner replay` and `view` read)",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        default=None,
        help="rerun rows that recorded an error",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any suite key (VALUE parsed as JSON when possible); repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_executor_args(p)
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
    p.add_argument(
        "--backend",
        choices=["hf", "vllm"],
        help="the policy's backend (vllm: each prefix's rollouts one n-request, prefix caching on)",
    )
    p.add_argument("--step-format", help=STEP_FORMAT_HELP)
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true")
    add_executor_args(p)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("train-prm", help="train a PRM on labeled rollouts (er/soft/hard/orm/exact)")
    p.add_argument(
        "--config",
        help="TOML of a PRM config: kind 'evidence' (reasoner/configs/prm.toml) or 'lm' "
        "(reasoner/configs/prm_lm.toml)",
    )
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
        "raft", help="PRM-guided rejection-sampling fine-tuning of the policy (resumable)"
    )
    p.add_argument("--config", help="TOML with RaftConfig fields (reasoner/configs/raft.toml)")
    p.add_argument("--out")
    p.add_argument("--policy", help="starting policy: 'embedded' or a checkpoint directory")
    p.add_argument("--selector", help="prm | orm | majority | random | oracle")
    p.add_argument("--prm", help="the PRM of the prm / orm selectors (any PRM spec)")
    p.add_argument("--threshold", type=float, help="keep nothing when the best reward is below")
    p.add_argument("--rounds", type=int)
    p.add_argument("--k", type=int, help="solutions sampled per prompt per round")
    p.add_argument("--prompts", type=int, help="train prompts per round")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", help="the run's label in reports (default: the selector)")
    p.add_argument("--threads", type=int)
    p.add_argument("--cache-dir", help="samples and evaluations shared between runs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any key")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the last round's policy into the package as the embedded policy",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_raft)

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
    add_executor_args(p)
    p.set_defaults(func=cmd_eval_prm)

    p = sub.add_parser(
        "serve",
        help="an OpenAI-compatible endpoint (needs the serve extra)",
        description="Serve POST /v1/chat/completions and /v1/completions (the last user message "
        "or the prompt is the problem), GET /v1/models and /health. Search options go in the "
        "request body (strategy, budget, aggregation, strategy options, return_tree).",
    )
    p.add_argument("--strategy", default="beam", help="the default preset's strategy")
    p.add_argument("--budget", type=int, default=16, help="the default budget")
    p.add_argument("--option", action="append", help="strategy option key=value (repeatable)")
    p.add_argument("--policy", default="embedded")
    p.add_argument("--prm", default="embedded", help="a PRM spec, or 'none'")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--seed", type=int, default=0, help="the seed of requests that give none")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--aggregation", default="min")
    p.add_argument("--step-format", help=STEP_FORMAT_HELP)
    p.add_argument("--model-name", default="reasoner", help="the default preset's model id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-budget", type=int, default=64, help="refuse larger budgets (413)")
    p.add_argument("--max-concurrent", type=int, default=64, help="searches in flight before 429")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "replay",
        help="re-score a bench run's saved trees with other PRMs / aggregations (no generation)",
        description="Re-score the saved trees of a bench run (made with --save-trees, or "
        "--subsample) with other PRMs and re-select with other aggregations; no policy is "
        "loaded. Writes results.jsonl, summary.md/json and accuracy.png like bench; the source "
        "run is only read. Best-of-N-family rows are exact replays; a tree search's rows re-pick "
        "within its saved tree (its search decisions are not replayed).",
    )
    p.add_argument("run_dir", help="a bench run's output directory")
    p.add_argument("--prms", type=_csv(), help="PRM specs to re-score with (default: the run's)")
    p.add_argument("--aggregations", type=_csv(), help="min,last,prod,mean (default: the run's)")
    p.add_argument("--out", help="output directory (default RUN_DIR-replay)")
    p.add_argument("--save-trees", action="store_true", help="store the re-scored trees")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "view",
        help="write a step tree (a tree/Solution JSON or a bench run) as one HTML file",
        description="Draw a step tree as one self-contained HTML file (no network): a "
        "StepTree or Solution JSON file (`solve --json --tree`), a results.jsonl, or a bench "
        "run directory made with --save-trees (a picker lists its problems).",
    )
    p.add_argument("source", help="a tree / Solution JSON, a results.jsonl or a run directory")
    p.add_argument("--problem", help="only this problem id (of a run)")
    p.add_argument("--out", metavar="FILE.html", help="default: SOURCE's view.html / FILE.html")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("strategies", help="list the registered strategies")
    p.set_defaults(func=cmd_strategies)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line. Bad input (a ReasonerError, a bad flag) and a refusal of the system
    (disk full, no permission) print one `reasoner: error:` line and exit 2; Ctrl-C exits 130;
    exit 1 is left to Python's own traceback, i.e. a bug."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # a path given in undecodable bytes prints as given
        reconfigure(errors="surrogateescape")
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
    except BrokenPipeError:  # `reasoner strategies | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # an unwritable output dir, a full disk, a vanished file
        print(f"reasoner: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

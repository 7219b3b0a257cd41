"""RAFT: rejection-sampling fine-tuning of the policy, guided by a PRM (or a control selector).

For round r = 1..R: sample k solutions per train prompt from the current policy (batched through
the engine), keep one per prompt with a selector (`raft_selectors`), fine-tune the policy on the
kept solutions with the policy trainer's own loop (loss on solution tokens only), evaluate it
(greedy and majority@N on held-out test problems, through the evaluator the caller passes: the
CLI passes `reasoner bench`'s), and checkpoint. Every phase resumes: samples are appended per
prompt (fsynced), training resumes from its checkpoint.pt, evaluation row by row, and a round
with its metrics.json written is done. Only train prompts are sampled and selected on; the test
problems live in the evaluator and their gold never reaches a selector.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reasoner.aggregation import aggregate, check_aggregation
from reasoner.api import Reasoner, load_policy, load_prm
from reasoner.config_io import Config, check_min
from reasoner.grading import grade
from reasoner.jsonl import append_jsonl, read_jsonl, repair_tail
from reasoner.models.loading import prm_checkpoint_dir
from reasoner.models.resolve import load_step_format, load_tokenizer, locate_model_path
from reasoner.step_format import StepFormat
from reasoner.synthetic import load_split
from reasoner.training.policy_trainer import (
    PolicyTrainConfig,
    pack,
    train_policy,
    training_text_ids,
)
from reasoner.training.raft_policy import (
    files_digest,
    policy_digest,
    shape_fields,
    trainable_state,
    write_init_dir,
)
from reasoner.training.raft_selectors import SCORED, Chain, check_selector, select
from reasoner.types import Problem, ReasonerError, Solution

__all__ = ["Evaluator", "RaftConfig", "run_raft"]

# evaluate(policy, out_dir, problems, majority_n, with_majority, batch_size, threads, backend) ->
# n_problems, greedy_accuracy, greedy_ci_low, greedy_ci_high, majority<N>_accuracy (and _ci_*,
# None without majority)
Evaluator = Callable[..., dict[str, Any]]


@dataclass
class RaftConfig(Config):
    """One RAFT run: the starting policy, the selector, the sampling budget, the fine-tune and
    the evaluation. Runs with the same seed, prompts and k sample the same solutions in round 1."""

    out_dir: str = "runs/raft"
    policy: str = "embedded"  # the starting policy: "embedded" or an HF checkpoint directory
    selector: str = "prm"  # prm | orm | majority | random | oracle
    name: str = ""  # the run's label in reports (default: the selector)
    prm: str = "embedded"  # any PRM spec the engine loads (prm / orm selectors only)
    aggregation: str = ""  # chain score from step scores; default: min (prm), last (orm)
    threshold: float | None = None  # keep nothing when the best reward is below it
    rounds: int = 3
    k: int = 8  # solutions sampled per prompt per round
    prompts: int = 256  # train prompts, from `prompt_offset` of the arith train split
    prompt_offset: int = 5000  # past the 1,200 the shipped PRM was labeled on
    seed: int = 0  # round r samples with seed + r (the same for every selector)
    temperature: float = 1.0
    backend: str = "hf"
    batch_size: int = 16  # prompts sampled together
    # the fine-tune: the policy trainer's loop on the kept solutions, epochs over them per round
    epochs: float = 2.0
    lr: float = 5e-5
    min_lr_ratio: float = 0.1
    warmup_steps: int = 2
    train_batch_size: int = 16
    seq_len: int = 256
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    save_every: int = 4
    threads: int = 1
    # evaluation on the arith test split (the evaluator's problems; never sampled for training)
    eval_problems: int = 300
    eval_majority_n: int = 16
    # the rounds evaluated with majority@N too (None: every round); it costs ~9x greedy (259 s
    # against 28 s of model time on 300 problems, measured), so a study may take [0, last]
    eval_majority_rounds: list[int] | None = None
    eval_batch_size: int = 32
    # where samples and evaluations are cached by policy checksum (default: out_dir); runs
    # sharing it share round 1's samples and the starting policy's evaluation
    cache_dir: str | None = None

    def validate(self) -> None:
        """A known selector (a threshold only where it has a reward), k, rounds, prompts and
        every count >= 1, a positive temperature, learning rate and epochs: before any work."""
        check_selector(self.selector, self.threshold)
        for key in ("rounds", "k", "prompts", "batch_size", "train_batch_size", "seq_len"):
            check_min(self, key, 1, prefix="raft: ")
        for key in ("save_every", "threads", "eval_problems", "eval_majority_n"):
            check_min(self, key, 1, prefix="raft: ")
        check_min(self, "eval_batch_size", 1, prefix="raft: ")
        for key in ("prompt_offset", "warmup_steps", "weight_decay"):
            check_min(self, key, 0, prefix="raft: ")
        for key in ("temperature", "epochs", "lr", "grad_clip"):
            check_min(self, key, 0.0, strict=True, prefix="raft: ")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ReasonerError(f"raft: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        check_min(self, "threshold", -math.inf, strict=True, prefix="raft: ")
        if self.aggregation:
            check_aggregation(self.aggregation)
        if any(r < 0 for r in self.eval_majority_rounds or []):
            raise ReasonerError(
                f"raft: eval_majority_rounds must be >= 0: {self.eval_majority_rounds}"
            )
        if self.backend not in ("hf", "vllm"):
            raise ReasonerError(f"raft: unknown backend {self.backend!r}; valid: hf, vllm")

    @property
    def label(self) -> str:
        return self.name or self.selector

    @property
    def chain_aggregation(self) -> str:
        return self.aggregation or ("last" if self.selector == "orm" else "min")


# ----------------------------------------------------------------------------------------------
# The fine-tune's config
# ----------------------------------------------------------------------------------------------


def _train_config(cfg: RaftConfig, shape: dict[str, Any], **fields: Any) -> PolicyTrainConfig:
    """A PolicyTrainConfig of the policy's shape with the RAFT run's fine-tune settings."""
    return PolicyTrainConfig(
        **shape_fields(shape),
        seq_len=cfg.seq_len,
        batch_size=cfg.train_batch_size,
        lr=cfg.lr,
        min_lr_ratio=cfg.min_lr_ratio,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        log_every=1,
        threads=cfg.threads,
        **fields,
    )


# ----------------------------------------------------------------------------------------------
# One round's phases
# ----------------------------------------------------------------------------------------------


def chain_records(sol: Solution, aggregation: str) -> list[dict[str, Any]]:
    """Each sampled chain of a best-of-N-style solution: steps, answer, step scores, score."""
    if sol.tree is None:
        return []
    out = []
    for leaf in sol.tree.leaves():
        path = sol.tree.path(leaf)
        scores = [n.prm_score for n in path]
        scored = all(s is not None for s in scores)
        out.append(
            {
                "steps": [n.text for n in path],
                "answer": leaf.answer if leaf.terminal and not leaf.truncated else None,
                "step_scores": scores if scored else None,
                "score": aggregate(scores, aggregation) if scored else None,  # type: ignore[arg-type]
            }
        )
    return out


def sample_round(
    cfg: RaftConfig, reasoner: Reasoner, prompts: list[Problem], path: Path, progress: bool
) -> dict[str, dict[str, Any]]:
    """Every prompt's k chains, from `path` where sampled already, else sampled (a batch at a
    time, fixed slices, a batch re-run whole if it holds an unsampled prompt) and appended."""
    repair_tail(path)
    done = {r["id"]: r for r in read_jsonl(path, "RAFT sample")}
    todo_batches = [
        prompts[i : i + cfg.batch_size]
        for i in range(0, len(prompts), cfg.batch_size)
        if any(p.id not in done for p in prompts[i : i + cfg.batch_size])
    ]
    for j, batch in enumerate(todo_batches):
        sols = reasoner.solve_batch([p.without_answer() for p in batch])
        rows = [
            {
                "id": p.id,
                "chains": chain_records(sol, cfg.chain_aggregation),
                "policy_tokens": sol.stats.policy_tokens,
                "policy_new_tokens": sol.stats.policy_new_tokens,
                "prm_tokens": sol.stats.prm_tokens,
                "error": sol.error,
            }
            for p, sol in zip(batch, sols)
            if p.id not in done
        ]
        append_jsonl(path, rows)
        done.update((r["id"], r) for r in rows)
        if progress:
            print(f"  sampled batch {j + 1}/{len(todo_batches)}", file=sys.stderr, flush=True)
    return done


def select_round(
    cfg: RaftConfig, prompts: list[Problem], samples: dict[str, dict[str, Any]], rnd: int
) -> list[dict[str, Any]]:
    """One record per prompt: the kept chain (or None) and, for the report only, whether it is
    right by the TRAIN gold (graded after selection; only the oracle selects by it)."""
    out = []
    for p in prompts:
        chains = samples[p.id]["chains"]
        seen = [Chain(c["answer"], c["score"]) for c in chains]
        gold = p.answer if cfg.selector == "oracle" else None
        choice = select(cfg.selector, seen, f"{p.id}:{rnd}:{cfg.seed}", gold, cfg.threshold)
        kept = chains[choice.index] if choice.index is not None else None
        out.append(
            {
                "id": p.id,
                "index": choice.index,
                "reward": choice.reward,
                "reason": choice.reason,
                "steps": kept["steps"] if kept else None,
                "correct": bool(kept and grade(kept["answer"], p.answer)),
            }
        )
    return out


def train_round(
    cfg: RaftConfig,
    shape: dict[str, Any],
    fmt: StepFormat,
    prompts: list[Problem],
    selected: list[dict[str, Any]],
    init_from: Path,
    out: Path,
    rnd: int,
    progress: bool,
) -> tuple[Path | None, int, int]:
    """Fine-tune the policy in `init_from` on the kept solutions (the trainer resumes from its
    checkpoint); (final checkpoint or None when nothing was kept, steps, tokens trained on)."""
    texts = {p.id: p.text for p in prompts}
    problems = [
        Problem(text=texts[s["id"]], id=s["id"], reference=fmt.delimiter.join(s["steps"]))
        for s in selected
        if s["steps"]
    ]
    if not problems:
        return None, 0, 0
    tokenizer = load_tokenizer(init_from / "tokenizer")
    rows = pack([training_text_ids(p, tokenizer, fmt) for p in problems], cfg.seq_len, cfg.seed)
    if not rows:
        return None, 0, 0  # less kept text than one sequence: nothing to train on
    steps = max(1, math.ceil(cfg.epochs * len(rows) / cfg.train_batch_size))
    tcfg = _train_config(
        cfg,
        shape,
        out_dir=str(out),
        init_from=str(init_from),
        seed=cfg.seed + rnd,
        steps=steps,
        warmup_steps=min(cfg.warmup_steps, steps - 1),
        save_every=cfg.save_every,
    )
    final = train_policy(tcfg, problems=problems, fmt=fmt, progress=progress)
    return final, steps, steps * cfg.train_batch_size * cfg.seq_len


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    with open(tmp) as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def load_prompts(cfg: RaftConfig) -> list[Problem]:
    """The run's train prompts (with their TRAIN gold, which only the oracle selects by)."""
    prompts = load_split("train")[cfg.prompt_offset : cfg.prompt_offset + cfg.prompts]
    if len(prompts) < cfg.prompts:
        raise ReasonerError(
            f"raft: the arith train split has only {len(prompts)} problems from offset "
            f"{cfg.prompt_offset}; lower prompts or prompt_offset"
        )
    return prompts


def run_raft(cfg: RaftConfig, evaluate: Evaluator, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every round; returns {"rows": [...], "policy": final policy dir} and
    writes out_dir/summary.json. Every bad input is refused before any sampling."""
    cfg.check()
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out
    start_dir = locate_model_path(cfg.policy, "policy")
    shape, state = trainable_state(start_dir)
    fmt = load_step_format(start_dir, None)
    prm = None
    prm_key = "none"
    if cfg.selector in SCORED:  # a PRM that does not load is refused here
        prm = load_prm(cfg.prm, cfg.backend, None, threads=cfg.threads)
        where = prm_checkpoint_dir(cfg.prm)
        prm_key = files_digest(where) if where else str(cfg.prm)
    prompts = load_prompts(cfg)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "raft_config.json", cfg.to_dict())
    write_init_dir(out / "round-0" / "train", state, start_dir)
    del state

    def evaluation(policy_dir: Path | str, rnd: int) -> dict[str, Any]:
        spec = str(policy_dir)
        digest = policy_digest(locate_model_path(spec, "policy"))
        return evaluate(
            policy=spec,
            out_dir=cache / "eval" / digest,
            problems=cfg.eval_problems,
            majority_n=cfg.eval_majority_n,
            with_majority=cfg.eval_majority_rounds is None or rnd in cfg.eval_majority_rounds,
            batch_size=cfg.eval_batch_size,
            threads=cfg.threads,
            backend=cfg.backend,
        )

    majority_key = f"majority{cfg.eval_majority_n}_accuracy"

    def complete(metrics: Path, rnd: int, spec: str) -> dict[str, Any]:
        """A finished round's row, with majority@N added (and saved) when this run asks for it
        at that round and the row was written without it (its greedy rows are reused)."""
        row = json.loads(metrics.read_text())
        wanted = cfg.eval_majority_rounds is None or rnd in cfg.eval_majority_rounds
        if wanted and row.get(majority_key) is None:
            t0, c0 = time.time(), time.process_time()
            row |= evaluation(spec, rnd)
            row["eval_wall_s"] = row.get("eval_wall_s", 0.0) + time.time() - t0
            row["eval_cpu_s"] = row.get("eval_cpu_s", 0.0) + time.process_time() - c0
            _write_json(metrics, row)
        return row

    rows: list[dict[str, Any]] = []
    base = {"selector": cfg.label, "prompts": cfg.prompts, "k": cfg.k}
    metrics0 = out / "round-0" / "metrics.json"
    if not metrics0.exists():
        t0, c0 = time.time(), time.process_time()
        ev = evaluation(cfg.policy, 0)
        row0 = {**base, "round": 0, **ev, "policy": cfg.policy, "selected": None}
        row0 |= {"selected_correct_rate": None, "sampling_tokens": 0, "sampling_prm_tokens": 0}
        row0 |= {"training_tokens": 0, "training_steps": 0}
        row0 |= {"eval_wall_s": time.time() - t0, "eval_cpu_s": time.process_time() - c0}
        _write_json(metrics0, row0)
    rows.append(complete(metrics0, 0, cfg.policy))
    policy_dir: Path = start_dir
    policy_spec = cfg.policy
    for rnd in range(1, cfg.rounds + 1):
        rdir = out / f"round-{rnd}"
        metrics = rdir / "metrics.json"
        if metrics.exists():
            row = json.loads(metrics.read_text())
            if row["training_steps"]:  # else the policy carried over (the run dir may move)
                policy_dir = rdir / "train" / "final"
                policy_spec = str(policy_dir)
            rows.append(complete(metrics, rnd, policy_spec))
            continue
        rdir.mkdir(parents=True, exist_ok=True)
        timing: dict[str, float] = {}
        t0, c0 = time.time(), time.process_time()
        digest = policy_digest(policy_dir)
        name = f"{digest}-prm-{prm_key}-seed{cfg.seed + rnd}-k{cfg.k}-t{cfg.temperature:g}.jsonl"
        samples_path = cache / "samples" / name
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"raft {cfg.label} round {rnd}: sampling -> {samples_path}", file=sys.stderr)
        reasoner = Reasoner(
            strategy="best_of_n" if prm is not None else "majority",
            budget=cfg.k,
            policy=load_policy(policy_spec, cfg.backend, None, threads=cfg.threads),
            prm=prm,
            backend=cfg.backend,
            seed=cfg.seed + rnd,
            temperature=cfg.temperature,
            aggregation=cfg.chain_aggregation,
            max_nodes=max(4096, cfg.k),
        )
        samples = sample_round(cfg, reasoner, prompts, samples_path, progress)
        del reasoner
        timing |= {"sampling_wall_s": time.time() - t0, "sampling_cpu_s": time.process_time() - c0}
        selected = select_round(cfg, prompts, samples, rnd)
        _write_json(rdir / "selected.json", selected)
        t0, c0 = time.time(), time.process_time()
        if progress:
            print(f"raft {cfg.label} round {rnd}: training", file=sys.stderr)
        previous = out / f"round-{rnd - 1}" / "train"
        final, steps, train_tokens = train_round(
            cfg, shape, fmt, prompts, selected, previous, rdir / "train", rnd, progress=False
        )
        if final is None:  # nothing kept: the policy carries over (its trainer state too)
            shutil.copytree(previous, rdir / "train", dirs_exist_ok=True)
        else:
            policy_dir, policy_spec = final, str(final)
        timing |= {"training_wall_s": time.time() - t0, "training_cpu_s": time.process_time() - c0}
        t0, c0 = time.time(), time.process_time()
        if progress:
            print(f"raft {cfg.label} round {rnd}: evaluating {policy_spec}", file=sys.stderr)
        ev = evaluation(policy_spec, rnd)
        timing |= {"eval_wall_s": time.time() - t0, "eval_cpu_s": time.process_time() - c0}
        kept = [s for s in selected if s["steps"]]
        recs = [samples[p.id] for p in prompts]
        row = {
            **base,
            "round": rnd,
            **ev,
            "policy": policy_spec,
            "selected": len(kept),
            "selected_correct_rate": (sum(s["correct"] for s in kept) / len(kept))
            if kept
            else None,
            "sampling_tokens": sum(r["policy_tokens"] for r in recs),
            "sampling_prm_tokens": sum(r["prm_tokens"] for r in recs),
            "sampling_errors": sum(1 for r in recs if r["error"]),
            "training_tokens": train_tokens,
            "training_steps": steps,
            **timing,
        }
        _write_json(metrics, row)
        rows.append(row)
        if progress:
            print(
                f"raft {cfg.label} round {rnd}: kept {len(kept)}/{len(prompts)}, greedy "
                f"{row['greedy_accuracy']:.3f}",
                file=sys.stderr,
            )
    summary = {"rows": rows, "policy": policy_spec}
    _write_json(out / "summary.json", summary)
    return summary

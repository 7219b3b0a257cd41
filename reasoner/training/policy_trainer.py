"""Train the tiny embedded policy (a LLaMA-architecture causal LM) from scratch by SFT on arith.

One readable loop, nanoGPT style: config at the top, packed sequences, loss on solution tokens
only, AdamW with warm-up and cosine decay, checkpoints every `save_every` steps, resumable.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from tqdm import tqdm
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from reasoner.config_io import Config, check_min
from reasoner.models.torch_state import load_module_state, load_torch_state, state_entries
from reasoner.step_format import StepFormat
from reasoner.synthetic import load_split
from reasoner.training.run_log import resume_checkpoint, resume_log
from reasoner.training.schedule import warmup_cosine_lr
from reasoner.training.tokenizer import build_tokenizer
from reasoner.types import Problem, ReasonerError


@dataclass
class PolicyTrainConfig(Config):
    """Everything that determines the trained policy (with the seed, the run is reproducible)."""

    out_dir: str = "runs/policy"
    seed: int = 0
    vocab_size: int = 1024
    hidden_size: int = 256
    intermediate_size: int = 688
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 512
    train_problems: int = 50000  # taken from the arith train split (0 = all)
    min_ops: int = 2
    max_ops: int = 6
    seq_len: int = 256
    batch_size: int = 16
    steps: int = 1400
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 150
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    save_every: int = 100
    log_every: int = 10
    threads: int = 2
    # a previous run's out_dir: continue from its weights and tokenizer
    init_from: str | None = None

    def validate(self) -> None:
        """Every size, count and step option >= 1, a positive learning rate and clip, ratios and
        betas in range: a run that would train nothing (steps <= 0) is refused before any work."""
        sizes = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads")
        counts = ("max_position_embeddings", "seq_len", "batch_size", "steps", "save_every")
        for key in (*sizes, *counts, "log_every", "threads"):
            check_min(self, key, 1, prefix="train-policy: ")
        for key in ("lr", "grad_clip"):
            check_min(self, key, 0.0, strict=True, prefix="train-policy: ")
        for key in ("warmup_steps", "train_problems", "weight_decay", "min_ops"):
            check_min(self, key, 0, prefix="train-policy: ")
        for key in ("min_lr_ratio", "beta1", "beta2"):
            value = getattr(self, key)
            top = "1]" if key == "min_lr_ratio" else "1)"  # a beta of 1 never forgets
            if not 0.0 <= value <= 1.0 or (top == "1)" and value == 1.0):
                raise ReasonerError(f"train-policy: {key} must be in [0, {top}, got {value!r}")
        if self.max_ops < self.min_ops:
            raise ReasonerError(
                f"train-policy: max_ops ({self.max_ops}) is below min_ops ({self.min_ops})"
            )
        if self.hidden_size % self.num_heads:
            raise ReasonerError(
                f"train-policy: hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_heads ({self.num_heads})"
            )


def training_text_ids(
    problem: Problem, tokenizer: Any, fmt: StepFormat
) -> tuple[list[int], list[int]]:
    """Token ids of prompt + reference solution and a 0/1 loss mask (1 on solution tokens).

    Built segment by segment (prompt, each step, each delimiter) exactly like generation sees it,
    so the delimiter tokens the model learns are the ones it will emit and be prefixed with.
    """
    if not problem.reference:
        raise ReasonerError(f"problem {problem.id} has no reference solution to train on")
    prompt = tokenizer.encode(fmt.render_prompt(problem.text), add_special_tokens=False)
    ids = [tokenizer.bos_token_id, *prompt]
    mask = [0] * len(ids)
    steps = fmt.split_steps(problem.reference)
    delim = tokenizer.encode(fmt.delimiter, add_special_tokens=False)
    for i, step in enumerate(steps):
        piece = tokenizer.encode(step, add_special_tokens=False)
        piece += delim if i + 1 < len(steps) else [tokenizer.eos_token_id]
        ids += piece
        mask += [1] * len(piece)
    return ids, mask


def pack(examples: list[tuple[list[int], list[int]]], seq_len: int, seed: int):
    """Concatenate shuffled examples into one stream and cut it into seq_len rows (ids, mask)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    stream_ids: list[int] = []
    stream_mask: list[int] = []
    for i in order:
        stream_ids += examples[i][0]
        stream_mask += examples[i][1]
    n = len(stream_ids) // seq_len
    rows = [
        (stream_ids[j * seq_len : (j + 1) * seq_len], stream_mask[j * seq_len : (j + 1) * seq_len])
        for j in range(n)
    ]
    return rows


def lr_at(step: int, cfg: PolicyTrainConfig) -> float:
    """The learning rate of a step: warm-up, then cosine decay over cfg.steps."""
    return warmup_cosine_lr(step, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio)


def build_model(cfg: PolicyTrainConfig, tokenizer: Any) -> LlamaForCausalLM:
    """A freshly initialised LLaMA of the config's shape for this tokenizer (seed torch first)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def train_policy(
    cfg: PolicyTrainConfig,
    problems: list[Problem] | None = None,
    fmt: StepFormat | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) a policy; returns the directory holding the final HF checkpoint."""
    cfg.check()
    fmt = fmt or StepFormat()
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    if problems is None:
        problems = [
            p for p in load_split("train") if cfg.min_ops <= p.metadata.get("ops", 0) <= cfg.max_ops
        ]
        if cfg.train_problems:
            problems = problems[: cfg.train_problems]

    tok_dir = out / "tokenizer"
    if cfg.init_from and not (tok_dir / "tokenizer.json").exists():
        src = Path(cfg.init_from) / "tokenizer"
        if not (src / "tokenizer.json").exists():
            raise ReasonerError(
                f"init_from {cfg.init_from!r} holds no tokenizer/ (not a train-policy out_dir)"
            )
        shutil.copytree(src, tok_dir)
    if (tok_dir / "tokenizer.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    else:
        texts = (fmt.render_prompt(p.text) + (p.reference or "") for p in problems)
        tokenizer = build_tokenizer(texts, vocab_size=cfg.vocab_size)
        tokenizer.save_pretrained(tok_dir)

    examples = [training_text_ids(p, tokenizer, fmt) for p in problems]
    rows = pack(examples, cfg.seq_len, cfg.seed)
    if not rows:
        raise ReasonerError("not enough training text to fill one sequence")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    ckpt = out / "checkpoint.pt"
    if cfg.init_from and not ckpt.exists():  # a new stage: previous weights, fresh optimizer
        source = Path(cfg.init_from) / "checkpoint.pt"
        hint = "init_from must name a train-policy out_dir this version wrote"
        [weights] = state_entries(load_torch_state(source, hint), source, ("model",), hint)
        load_module_state(model, weights, source, hint)
    start, running = resume_checkpoint(
        ckpt, model, optim, f"delete {ckpt} to restart the run from step 0"
    )
    log_path = out / "loss.jsonl"
    resume_log(log_path, start)

    ids_all = torch.tensor([r[0] for r in rows], dtype=torch.long)
    mask_all = torch.tensor([r[1] for r in rows], dtype=torch.bool)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(rows), generator=gen)
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="train-policy")
    t0, tokens_seen = time.time(), 0
    for step in range(start, cfg.steps):
        # batch indices are a pure function of the step, so a resumed run sees the same data
        idx = [int(order[(step * cfg.batch_size + j) % len(rows)]) for j in range(cfg.batch_size)]
        ids = ids_all[idx]
        labels = ids.masked_fill(~mask_all[idx], -100)  # HF shifts labels itself: never pre-shift
        for group in optim.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=ids, labels=labels).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optim.step()
        tokens_seen += ids.numel()
        running.append(loss.item())
        bar.update(1)
        if (step + 1) % cfg.log_every == 0:
            rate = tokens_seen / max(1e-9, time.time() - t0)
            record = {
                "step": step + 1,
                "loss": sum(running) / len(running),
                "lr": lr_at(step, cfg),
                "tokens_per_s": rate,
            }
            running = []
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{rate:.0f}")
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            tmp = out / "checkpoint.pt.tmp"
            state = {"model": model.state_dict(), "optim": optim.state_dict(), "step": step + 1}
            torch.save({**state, "running": running}, tmp)
            tmp.replace(ckpt)
    bar.close()
    final = out / "final"
    model.eval()
    model.to(torch.float16).save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    (final / "step_format.json").write_text(json.dumps(fmt.to_dict(), indent=2))
    plot_loss(log_path, out / "loss.png")
    return final


def plot_loss(log_path: Path, png: Path) -> None:
    """Write the loss curve as a PNG (skipped quietly if there is no log yet)."""
    if not log_path.exists():
        return
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    fig = Figure(figsize=(6, 3.5))  # no pyplot: no global backend, no open figures to close
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set_xlabel("step")
    ax.set_ylabel("loss (solution tokens)")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png, dpi=100)

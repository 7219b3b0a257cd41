"""The PRM trainers' shared run: the run directory, seeded batch order, warmup-cosine LR,
gradient clipping, validation logging and checkpoint/resume. The LM PRM and the evidence PRM
differ only in what a batch's loss is and how validation is scored.

Under torchrun (reasoner.training.distributed) every rank runs the same steps on its shard of
each global batch; rank 0 alone validates and writes the config, the log and the checkpoints,
which hold the unwrapped model, so a run resumes on any number of processes."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from reasoner.training.distributed import World, check_batch, join
from reasoner.training.prm_config import PRMTrainConfig
from reasoner.training.run_log import resume_checkpoint, resume_log
from reasoner.training.schedule import warmup_cosine_lr


def start_run(cfg: PRMTrainConfig) -> tuple[Path, World]:
    """Join the training processes (a world of one without torchrun), seed torch, set its
    threads, make cfg.out_dir and (rank 0) record the config there; returns it and the World."""
    world = join()
    check_batch(world, cfg.batch_size)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if world.is_main:
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    return out, world


def total_steps_for(cfg: PRMTrainConfig, examples: int) -> int:
    """Optimiser steps for cfg.epochs passes over `examples` in batches of cfg.batch_size."""
    return max(1, int(round(cfg.epochs * math.ceil(examples / cfg.batch_size))))


def batch_indices(step: int, examples: int, batch_size: int, seed: int) -> list[int]:
    """The examples of one step: a pure function of the step, so a resumed run sees the same."""
    epoch, within = divmod(step * batch_size, examples)
    order = list(range(examples))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return [order[(within + j) % len(order)] for j in range(batch_size)]


def run_training(
    cfg: PRMTrainConfig,
    out: Path,
    model: Any,
    optim: Any,
    params: list,
    total_steps: int,
    loss_at: Callable[[int], Any],
    evaluate: Callable[[], dict[str, Any]],
    desc: str,
    progress: bool,
    world: World | None = None,
) -> None:
    """Run (or resume from out/checkpoint.pt) steps [start, total_steps) of `loss_at(step)`,
    logging validation to out/log.jsonl every cfg.eval_every steps and at the end.

    With several processes `model` is the unwrapped model (what is saved) and `loss_at` returns
    this rank's share of the global batch's mean loss (World.global_mean) computed through the
    DDP-wrapped one; the logged loss is the ranks' sum, one process's loss on the whole batch."""
    world = world or World()
    ckpt = out / "checkpoint.pt"
    start, running = resume_checkpoint(
        ckpt, model, optim, f"delete {ckpt} to restart training from step 0"
    )
    log_path = out / "log.jsonl"
    if world.is_main:
        resume_log(log_path, start)
    bar = tqdm(
        total=total_steps, initial=start, disable=not progress or not world.is_main, desc=desc
    )
    t0 = time.time()
    for step in range(start, total_steps):
        for group in optim.param_groups:
            group["lr"] = warmup_cosine_lr(
                step, total_steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio
            )
        loss = loss_at(step)
        optim.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients: scaled by the world size, their mean is the sum's
        (loss * world.size if world.size > 1 else loss).backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optim.step()
        running.append(world.sum(loss.detach()).item())
        bar.update(1)
        last = step + 1 == total_steps
        log_now = (step + 1) % cfg.eval_every == 0 or last
        if not world.is_main:  # rank 0 validates, logs and saves; the others go on
            running = [] if log_now else running
            continue
        if log_now:
            metrics = evaluate()
            record = {
                "step": step + 1,
                "train_loss": sum(running) / len(running),
                "seconds": time.time() - t0,
                **{f"val_{k}": v for k, v in metrics.items()},
            }
            running = []
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            bar.set_postfix(val_loss=f"{metrics.get('loss', float('nan')):.4f}")
        if (step + 1) % cfg.save_every == 0 or last:
            tmp = out / "checkpoint.pt.tmp"
            state = {"model": model.state_dict(), "optim": optim.state_dict(), "step": step + 1}
            torch.save({**state, "running": running}, tmp)
            tmp.replace(ckpt)
    bar.close()

"""Train an LM PRM (kind "lm"): soft-target 2-token cross-entropy at every step tag.

The PRM is a causal LM with no new head: at each step tag it compares the logits of the two label
tokens, and the loss there is BCE-with-logits on (z+ - z-) against the step's label v, which equals
the soft-target cross-entropy of the 2-way softmax against (v, 1 - v). Other positions carry no
loss. Inputs are built by the same PRMInputBuilder the scorer uses. Label kinds: "er" (any float
eta), "soft", "hard", "orm", "exact". All records are used (the published trainer silently kept
1000). `train_lm_prm` reads top to bottom: data, model, optimiser, the shared loop, the save.
Under torchrun the model is DDP-wrapped and each rank takes its shard of every global batch
(reasoner.training.distributed); rank 0 alone saves.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from reasoner.models.hf_prm import PRMInputBuilder
from reasoner.models.resolve import (
    load_causal_lm,
    load_step_format,
    load_tokenizer,
    resolve_model_path,
)
from reasoner.training.distributed import leave
from reasoner.training.prm_config import LMPRMTrainConfig
from reasoner.training.prm_data import load_records, train_val_records
from reasoner.training.prm_init import (
    append_identity_layers,
    freeze_all_but_top,
    untie_output_embeddings,
)
from reasoner.training.prm_loop import batch_indices, run_training, start_run, total_steps_for
from reasoner.training.prm_metrics import step_metrics
from reasoner.training.records import LabeledSolution
from reasoner.types import ReasonerError


def build_examples(
    records: list[LabeledSolution], builder: Any, label: str, eta: float | None
) -> list[dict]:
    """Token ids, tag positions, targets, and the exact step correctness when known."""
    examples = []
    for r in records:
        ids, tags = builder.build(r.problem, r.steps)
        prompt_len = len(builder.build(r.problem, [])[0])
        values = r.values(label, eta)
        truth = None
        if r.first_error is not None:
            truth = [
                1.0 if (r.first_error == -1 or i < r.first_error) else 0.0
                for i in range(len(r.steps))
            ]
        examples.append(
            {
                "ids": ids,
                "tags": tags,
                "targets": values[: len(tags)],
                "truth": truth,
                "problem": r.problem_id,
                "correct": r.correct,
                "prompt_len": prompt_len,
            }
        )
    return examples


def _batch_tensors(batch: list[dict], pad_id: int, device: Any = None):
    """Padded ids, attention mask, the tags' (row, column) and their targets, on `device`."""
    width = max(len(e["ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for b, e in enumerate(batch):
        ids[b, : len(e["ids"])] = torch.tensor(e["ids"])
        attn[b, : len(e["ids"])] = 1
        for t, v in zip(e["tags"], e["targets"]):
            rows.append(b)
            cols.append(t)
            targets.append(v)
    tensors = (
        ids,
        attn,
        torch.tensor(rows, dtype=torch.long),
        torch.tensor(cols, dtype=torch.long),
        torch.tensor(targets, dtype=torch.float32),
    )
    return tuple(t.to(device) for t in tensors) if device is not None else tensors


def tag_margins(model: Any, batch: list[dict], pad_id: int, pos_id: int, neg_id: int):
    """z+ - z- at every tag of the batch, plus the targets (flattened in batch order)."""
    margin, targets, _ = tag_margins_and_lm_loss(model, batch, pad_id, pos_id, neg_id, None)
    return margin, targets


def tag_margins_and_lm_loss(
    model: Any, batch: list[dict], pad_id: int, pos_id: int, neg_id: int, tag_id: int | None
):
    """One forward pass: the tag margins and targets, and (tag_id given) the mean next-token loss
    on the solution's text tokens (not the prompt, tags or padding), else None."""
    margin, targets, lm = tag_margins_and_lm_sum(model, batch, pad_id, pos_id, neg_id, tag_id)
    return margin, targets, None if lm is None else lm[0] / lm[1]


def tag_margins_and_lm_sum(
    model: Any, batch: list[dict], pad_id: int, pos_id: int, neg_id: int, tag_id: int | None
):
    """tag_margins_and_lm_loss with the next-token loss as (sum, token count), so that data
    parallel ranks can divide by the global count; the inputs go to the model's device."""
    device = next(model.parameters()).device
    ids, attn, rows, cols, targets = _batch_tensors(batch, pad_id, device)
    logits = model(input_ids=ids, attention_mask=attn).logits
    picked = logits[rows, cols][:, [pos_id, neg_id]].float()
    lm = None
    if tag_id is not None:
        nxt = ids[:, 1:].clone()
        keep = attn[:, 1:].bool() & (nxt != tag_id)
        for b, e in enumerate(batch):
            keep[b, : max(0, e["prompt_len"] - 1)] = False
        nxt[~keep] = -100
        total = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]),
            nxt.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        lm = (total, int(keep.sum()))
    return picked[:, 0] - picked[:, 1], targets, lm


def evaluate(
    model: Any, examples: list[dict], pad_id: int, pos_id: int, neg_id: int, batch_size: int = 32
) -> dict[str, Any]:
    """Validation loss, step accuracy vs the labels, AUC vs labels and vs exact step correctness."""
    model.eval()
    scores, targets, truths, losses = [], [], [], []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = examples[i : i + batch_size]
            margin, target = tag_margins(model, batch, pad_id, pos_id, neg_id)
            losses.append(
                float(
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        margin, target, reduction="sum"
                    )
                )
            )
            scores += torch.sigmoid(margin).cpu().tolist()
            targets += target.cpu().tolist()
            for e in batch:
                truths += (
                    e["truth"][: len(e["tags"])]
                    if e["truth"] is not None
                    else [None] * len(e["tags"])
                )
    model.train()
    return step_metrics(examples, scores, targets, truths, sum(losses))


def train_lm_prm(
    cfg: LMPRMTrainConfig, records: list[LabeledSolution] | None = None, progress: bool = True
) -> Path:
    """Train (or resume) an LM PRM; returns the directory of the final HF checkpoint."""
    cfg.check()
    label, eta = cfg.label_kind()
    out, world = start_run(cfg)
    records = load_records(cfg, records)

    # the base, its step format (with the PRM input overrides) and the model to fine-tune
    base = resolve_model_path(cfg.base, "policy")
    tokenizer = load_tokenizer(base)
    fmt = load_step_format(base, None)
    if cfg.prm_format:
        fmt = dataclasses.replace(fmt, **cfg.prm_format)
    # a bfloat16 run loads in bfloat16: a 7-8B base is 16 GB per process, not 32
    model = load_causal_lm(base, cfg.dtype)
    if cfg.add_step_tag_token:
        add_tag_token(tokenizer, model, fmt.prm_format.step_tag)
    append_identity_layers(model, cfg.extra_layers)  # no-op at 0
    if cfg.untie_embeddings or cfg.freeze_base:
        untie_output_embeddings(model)
    if cfg.freeze_base:
        freeze_all_but_top(model, cfg.extra_layers)
    if cfg.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    if cfg.lora_rank > 0:
        model = _with_lora(model, cfg.lora_rank)
    model = model.to(world.device)

    # examples: token ids with the step tags, the tag targets of the label kind
    builder = PRMInputBuilder(tokenizer, fmt, cfg.max_length)
    train_recs, val_recs = train_val_records(cfg, records)
    train_ex = build_examples(train_recs, builder, label, eta)
    val_ex = build_examples(val_recs, builder, label, eta)

    # optimisation: BCE at the tags (+ the optional LM loss) through the shared loop
    total_steps = total_steps_for(cfg, len(train_ex))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tag_id = builder.tag_id if cfg.lm_loss_weight > 0 else None

    wrapped = world.wrap(model)  # DDP under torchrun: the forward that syncs gradients

    def loss_at(step: int) -> Any:
        """This rank's share of the global batch's mean loss (the whole mean in one process)."""
        order = batch_indices(step, len(train_ex), cfg.batch_size, cfg.seed)
        batch = [train_ex[i] for i in world.shard(order)]
        margin, target, lm = tag_margins_and_lm_sum(
            wrapped, batch, pad_id, builder.pos_id, builder.neg_id, tag_id
        )
        bce = torch.nn.functional.binary_cross_entropy_with_logits(margin, target, reduction="sum")
        loss = world.global_mean(bce, len(target))
        return loss if lm is None else loss + cfg.lm_loss_weight * world.global_mean(*lm)

    def validate() -> dict[str, Any]:
        return evaluate(model, val_ex, pad_id, builder.pos_id, builder.neg_id) if val_ex else {}

    model.train()
    desc = f"train-prm ({cfg.label})"
    run_training(
        cfg, out, model, optim, params, total_steps, loss_at, validate, desc, progress, world
    )

    # the checkpoint (rank 0): merged adapters, fp16 for tiny models, its step format and summary
    final = out / "final"
    if not world.is_main:
        leave(world)  # waits there until rank 0 has saved
        return final
    if cfg.lora_rank > 0:
        model = model.merge_and_unload()
    model.eval()
    if sum(p.numel() for p in model.parameters()) < 50_000_000:
        model = model.to(torch.float16)  # tiny models ship as package data: halve the file
    model.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    (final / "step_format.json").write_text(json.dumps(fmt.to_dict(), indent=2))
    summary = {
        "label": label,
        "eta": eta,
        "train_records": len(train_ex),
        "slip_negatives": cfg.slip_negatives,
        "extra_layers": cfg.extra_layers,
        "untie_embeddings": cfg.untie_embeddings,
        "freeze_base": cfg.freeze_base,
        "val_records": len(val_ex),
        "steps": total_steps,
        "processes": world.size,
    }
    (final / "prm_training.json").write_text(json.dumps(summary, indent=2))
    leave(world)
    return final


def add_tag_token(tokenizer: Any, model: Any, tag: str) -> None:
    """Make `tag` one token: add it as a special token and resize the model's embeddings (its new
    row: the mean of the others, transformers' default); a no-op when it already is one."""
    if len(tokenizer.encode(tag, add_special_tokens=False)) == 1:
        return
    tokenizer.add_tokens([tag], special_tokens=True)
    model.resize_token_embeddings(len(tokenizer))


def _with_lora(model: Any, rank: int) -> Any:
    """The model with LoRA adapters on every linear layer (peft: an optional dependency)."""
    try:
        from peft import LoraConfig, get_peft_model  # optional: only LoRA runs need it
    except ImportError as err:
        raise ReasonerError("lora_rank > 0 needs peft: pip install 'reasoner[peft]'") from err
    return get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear")
    )

"""Train a PRM on rollout-labeled data: soft-target 2-token cross-entropy at every step tag.

The PRM is a causal LM with no new head: at each step tag it compares the logits of the two label
tokens, and the loss there is BCE-with-logits on (z+ - z-) against the step's label v, which equals
the soft-target cross-entropy of the 2-way softmax against (v, 1 - v). Other positions carry no
loss. Inputs are built by the same PRMInputBuilder the scorer uses. Label kinds: "er" (any float
eta), "soft", "hard", "orm". All records are used (the published trainer silently kept 1000).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.config_io import config_from_toml
from reasoner.step_format import StepFormat
from reasoner.training.records import LabeledSolution, read_records
from reasoner.types import ReasonerError

PRM_KINDS = ("lm", "evidence")


@dataclass
class PRMTrainConfig:
    """Everything that determines a trained PRM."""

    data: str = "runs/labels/rollouts.jsonl"
    # "lm": fine-tune the base as a PRM read at step tags; "evidence": train a small head over
    # the base's own token evidence (reasoner.models.evidence_prm), the base left unchanged
    kind: str = "lm"
    base: str = "embedded"  # any HF causal LM dir; "embedded" = the shipped policy
    out_dir: str = "runs/prm"
    label: str = "er"  # er | soft | hard | orm (or "er-2", "er:0.5" ...)
    eta: float | None = 2.0  # for label "er"; any float > 0
    seed: int = 0
    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # held out by problem, not by solution
    max_length: int = 512
    dtype: str = "float32"  # float32 | bfloat16
    lora_rank: int = 0  # > 0: train LoRA adapters through peft (for large bases)
    eval_every: int = 100
    save_every: int = 100
    threads: int = 2
    limit: int = 0  # 0 = every record (never a silent cap)
    # overrides of the PRM input fields of the base's step format (prm_prompt_template,
    # prm_step_joiner, step_tag ...); saved with the checkpoint so scoring builds the same input
    prm_format: dict[str, Any] = dataclasses.field(default_factory=dict)
    # weight of an auxiliary next-token loss on the solution tokens: keeps the base policy's
    # knowledge of what a right step looks like, which the tag readout can then use (0 = off)
    lm_loss_weight: float = 0.0
    # slip-negative copies per training record (reasoner.training.augment): minimal pairs that
    # differ from a labeled solution in one equation's result; validation data is never augmented
    slip_negatives: int = 0
    # decoder layers appended to the base (identity at start, reasoner.training.prm_init): the
    # policy's predictions are formed at its last layer, so a PRM read at the step tag needs
    # depth beyond it to compare them with the step's tokens (0 = the base as it is)
    extra_layers: int = 0
    # give the LM head its own copy of a tied embedding matrix, so training the "+" / "-" readout
    # does not change what those tokens mean as inputs (reasoner.training.prm_init)
    untie_embeddings: bool = False
    # train only the appended layers, the final norm and the (untied) output head: the policy's
    # layers, whose last one forms its next-token predictions, stay exactly as trained
    freeze_base: bool = False
    # kind "evidence": hidden units of the head's MLP, and where the base's features of the
    # records are cached ("" = out_dir/features.pt; PRMs of several label kinds can share one)
    evidence_hidden: int = 16
    features_cache: str = ""
    # kind "evidence": feature groups the head reads (reasoner.models.token_evidence.FEATURE_GROUPS):
    # "token" (the base's own token probabilities) and "equation" (a calculator check of the
    # step's equations, for suites whose steps compute "a op b = c")
    evidence_groups: list[str] = dataclasses.field(default_factory=lambda: ["token", "equation"])

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> PRMTrainConfig:
        return config_from_toml(cls, path, **overrides)

    def __post_init__(self) -> None:
        if self.kind not in PRM_KINDS:
            raise ReasonerError(
                f"train-prm: kind must be one of {', '.join(PRM_KINDS)}, got {self.kind!r}"
            )
        from reasoner.models.token_evidence import FEATURE_GROUPS

        bad = [g for g in self.evidence_groups if g not in FEATURE_GROUPS]
        if bad or not self.evidence_groups:
            raise ReasonerError(
                f"train-prm: evidence_groups {self.evidence_groups!r} must be a non-empty list of "
                f"{', '.join(FEATURE_GROUPS)}"
            )
        if self.evidence_hidden < 1:
            raise ReasonerError(
                f"train-prm: evidence_hidden must be >= 1, got {self.evidence_hidden}"
            )

    def label_kind(self) -> tuple[str, float | None]:
        """The resolved label kind and eta (eta only for "er"), or a clear error."""
        from reasoner.labels import resolve_label_kind

        try:
            return resolve_label_kind(
                self.label, self.eta if self.label.strip().lower() == "er" else None
            )
        except ValueError as err:
            raise ReasonerError(f"train-prm: {err}") from err


def split_by_problem(records: list[LabeledSolution], val_fraction: float, seed: int):
    """Train/validation split by problem id, so no problem is on both sides."""
    ids = sorted({r.problem_id for r in records})
    random.Random(seed).shuffle(ids)
    n_val = int(round(len(ids) * val_fraction))
    val_ids = set(ids[:n_val])
    return [r for r in records if r.problem_id not in val_ids], [
        r for r in records if r.problem_id in val_ids
    ]


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


def roc_auc(scores: list[float], labels: list[float]) -> float | None:
    """Area under the ROC curve (ties counted half); None if one class is missing."""
    pos = [s for s, y in zip(scores, labels) if y >= 0.5]
    neg = [s for s, y in zip(scores, labels) if y < 0.5]
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_pos = sum(r for r, y in zip(ranks, labels) if y >= 0.5)
    return (rank_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def _batch_tensors(batch: list[dict], pad_id: int):
    import torch

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
    return (
        ids,
        attn,
        torch.tensor(rows),
        torch.tensor(cols),
        torch.tensor(targets, dtype=torch.float32),
    )


def tag_margins(model: Any, batch: list[dict], pad_id: int, pos_id: int, neg_id: int):
    """z+ - z- at every tag of the batch, plus the targets (flattened in batch order)."""
    margin, targets, _ = tag_margins_and_lm_loss(model, batch, pad_id, pos_id, neg_id, None)
    return margin, targets


def tag_margins_and_lm_loss(
    model: Any, batch: list[dict], pad_id: int, pos_id: int, neg_id: int, tag_id: int | None
):
    """One forward pass: the tag margins and targets, and (tag_id given) the mean next-token loss
    on the solution's text tokens (not the prompt, tags or padding), else None."""
    import torch

    ids, attn, rows, cols, targets = _batch_tensors(batch, pad_id)
    logits = model(input_ids=ids, attention_mask=attn).logits
    picked = logits[rows, cols][:, [pos_id, neg_id]].float()
    lm_loss = None
    if tag_id is not None:
        nxt = ids[:, 1:].clone()
        keep = attn[:, 1:].bool() & (nxt != tag_id)
        for b, e in enumerate(batch):
            keep[b, : max(0, e["prompt_len"] - 1)] = False
        nxt[~keep] = -100
        lm_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), nxt.reshape(-1), ignore_index=-100
        )
    return picked[:, 0] - picked[:, 1], targets, lm_loss


def pairwise_accuracy(examples: list[dict], chain_scores: list[float]) -> float | None:
    """Share of (correct, wrong) solution pairs of the same problem that the scores order right
    (ties count half): what best-of-N needs, unlike pooled AUC, which problem difficulty inflates."""
    by_problem: dict[str, tuple[list[float], list[float]]] = {}
    for e, s in zip(examples, chain_scores):
        right, wrong = by_problem.setdefault(e["problem"], ([], []))
        (right if e["correct"] else wrong).append(s)
    wins = pairs = 0.0
    for right, wrong in by_problem.values():
        for a in right:
            for b in wrong:
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
                pairs += 1
    return wins / pairs if pairs else None


def evaluate(
    model: Any, examples: list[dict], pad_id: int, pos_id: int, neg_id: int, batch_size: int = 32
) -> dict[str, Any]:
    """Validation loss, step accuracy vs the labels, AUC vs labels and vs exact step correctness."""
    import torch

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
            scores += torch.sigmoid(margin).tolist()
            targets += target.tolist()
            for e in batch:
                truths += (
                    e["truth"][: len(e["tags"])]
                    if e["truth"] is not None
                    else [None] * len(e["tags"])
                )
    model.train()
    return step_metrics(examples, scores, targets, truths, sum(losses))


def step_metrics(
    examples: list[dict],
    scores: list[float],
    targets: list[float],
    truths: list[float | None],
    loss_sum: float,
) -> dict[str, Any]:
    """Validation metrics of flat per-step scores (examples in order, len(e["tags"]) steps each):
    within-problem pair accuracy, loss, step accuracy, AUC vs labels and vs exact step truth."""
    n = max(1, len(scores))
    known = [(s, t) for s, t in zip(scores, truths) if t is not None]
    chains, k = [], 0
    for e in examples:
        chains.append(scores[k : k + len(e["tags"])])
        k += len(e["tags"])
    return {
        "pair_acc_min": pairwise_accuracy(examples, [min(c) if c else 0.0 for c in chains]),
        "pair_acc_last": pairwise_accuracy(examples, [c[-1] if c else 0.0 for c in chains]),
        "loss": loss_sum / n,
        "step_accuracy": sum((s >= 0.5) == (t >= 0.5) for s, t in zip(scores, targets)) / n,
        "auc_vs_labels": roc_auc(scores, [1.0 if t >= 0.5 else 0.0 for t in targets]),
        "auc_vs_exact": roc_auc([s for s, _ in known], [t for _, t in known]) if known else None,
        "steps": len(scores),
    }


def train_prm(
    cfg: PRMTrainConfig, records: list[LabeledSolution] | None = None, progress: bool = True
) -> Path:
    """Train (or resume) a PRM; returns the directory of the final HF checkpoint."""
    import torch

    from reasoner.models.hf_prm import PRMInputBuilder
    from reasoner.models.resolve import (
        load_causal_lm,
        load_step_format,
        load_tokenizer,
        resolve_model_path,
    )
    from reasoner.training.prm_loop import batch_indices, run_training, total_steps_for

    if cfg.kind == "evidence":
        from reasoner.training.evidence_trainer import train_evidence_prm

        return train_evidence_prm(cfg, records, progress)
    label, eta = cfg.label_kind()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    if records is None:
        records = read_records(cfg.data)
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise ReasonerError(f"no labeled records in {cfg.data}")
    base = resolve_model_path(cfg.base, "policy")
    tokenizer = load_tokenizer(base)
    fmt: StepFormat = load_step_format(base, None)
    if not isinstance(cfg.prm_format, dict):
        raise ReasonerError(f"train-prm: prm_format must be a table, got {cfg.prm_format!r}")
    if cfg.prm_format:
        allowed = {"prm_prompt_template", "prm_step_joiner", "step_tag"}
        allowed |= {"positive_token", "negative_token"}
        unknown = sorted(set(cfg.prm_format) - allowed)
        if unknown:
            raise ReasonerError(
                f"train-prm: prm_format keys {unknown} are not PRM input fields; valid: "
                f"{', '.join(sorted(allowed))}"
            )
        fmt = dataclasses.replace(fmt, **cfg.prm_format)
    if cfg.lm_loss_weight < 0:
        raise ReasonerError(f"train-prm: lm_loss_weight must be >= 0, got {cfg.lm_loss_weight}")
    model = load_causal_lm(base, "float32")
    if cfg.freeze_base and cfg.extra_layers < 1:
        raise ReasonerError(
            "train-prm: freeze_base needs extra_layers >= 1 (nothing left to train)"
        )
    from reasoner.training.prm_init import (
        append_identity_layers,
        freeze_all_but_top,
        untie_output_embeddings,
    )

    append_identity_layers(model, cfg.extra_layers)  # no-op at 0
    if cfg.untie_embeddings or cfg.freeze_base:
        untie_output_embeddings(model)
    if cfg.freeze_base:
        freeze_all_but_top(model, cfg.extra_layers)
    if cfg.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    if cfg.lora_rank > 0:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise ReasonerError("lora_rank > 0 needs peft: pip install 'reasoner[peft]'") from err
        model = get_peft_model(
            model,
            LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, target_modules="all-linear"),
        )
    builder = PRMInputBuilder(tokenizer, fmt, cfg.max_length)
    train_recs, val_recs = split_by_problem(records, cfg.val_fraction, cfg.seed)
    if cfg.slip_negatives < 0:
        raise ReasonerError(f"train-prm: slip_negatives must be >= 0, got {cfg.slip_negatives}")
    if cfg.slip_negatives:
        from reasoner.training.augment import slip_negatives

        train_recs = train_recs + slip_negatives(train_recs, cfg.slip_negatives, cfg.seed)
    train_ex = build_examples(train_recs, builder, label, eta)
    val_ex = build_examples(val_recs, builder, label, eta)
    total_steps = total_steps_for(cfg, len(train_ex))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def loss_at(step: int) -> Any:
        batch = [train_ex[i] for i in batch_indices(step, len(train_ex), cfg.batch_size, cfg.seed)]
        margin, target, lm_loss = tag_margins_and_lm_loss(
            model,
            batch,
            pad_id,
            builder.pos_id,
            builder.neg_id,
            builder.tag_id if cfg.lm_loss_weight > 0 else None,
        )
        loss = torch.nn.functional.binary_cross_entropy_with_logits(margin, target)
        return loss if lm_loss is None else loss + cfg.lm_loss_weight * lm_loss

    def validate() -> dict[str, Any]:
        return evaluate(model, val_ex, pad_id, builder.pos_id, builder.neg_id) if val_ex else {}

    model.train()
    run_training(
        cfg,
        out,
        model,
        optim,
        params,
        total_steps,
        loss_at,
        validate,
        f"train-prm ({cfg.label})",
        progress,
    )
    final = out / "final"
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
    }
    (final / "prm_training.json").write_text(json.dumps(summary, indent=2))
    return final

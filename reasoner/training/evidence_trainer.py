"""Train an evidence PRM: the step-value head over the base LM's token evidence, on rollout labels.

The loss is the same soft-target BCE as the LM PRM's (label v in [0, 1] per step, any label kind:
ER with float eta, soft, hard, ORM, exact); all records are used, the validation split is by
problem, and the metrics are the LM trainer's (reasoner.training.prm_trainer.step_metrics). The
base LM is frozen, so its features are computed once per record and cached beside the run
(features.pt, keyed by the records and the base): a rerun, or another label kind on the same
data, only retrains the head, which takes seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from reasoner.training.records import LabeledSolution, read_records
from reasoner.types import ReasonerError


def _fingerprint(records: list[LabeledSolution], base: str) -> str:
    """What the cached features depend on: the base and every record's problem and steps."""
    digest = hashlib.sha256(base.encode())
    for r in records:
        digest.update(json.dumps([r.problem, r.steps]).encode())
    return digest.hexdigest()


def record_features(
    records: list[LabeledSolution], base: str, cache: Path, progress: bool = True, chunk: int = 32
) -> list[list[list[float]]]:
    """Evidence rows per step of every record (computed once, then read from `cache`)."""
    import torch
    from tqdm import tqdm

    from reasoner.models.base import ScoreRequest
    from reasoner.models.evidence_prm import EvidenceFeatures

    key = _fingerprint(records, base)
    if cache.exists():
        saved = torch.load(cache, weights_only=False)
        if saved.get("key") == key:
            return saved["rows"]
    features = EvidenceFeatures(base, prefix_cache_mb=0)
    order = sorted(range(len(records)), key=lambda i: len(records[i].steps))
    rows: list[list[list[float]]] = [[] for _ in records]
    for start in tqdm(range(0, len(order), chunk), disable=not progress, desc="evidence"):
        part = order[start : start + chunk]
        out, _ = features.rows([ScoreRequest(records[i].problem, records[i].steps) for i in part])
        for i, r in zip(part, out):
            rows[i] = r
    tmp = cache.with_suffix(".tmp")
    torch.save({"key": key, "rows": rows}, tmp)
    tmp.replace(cache)
    return rows


def _examples(records: list[LabeledSolution], rows: list, label: str, eta: float | None) -> list:
    """Per record: its feature rows, step targets, exact truth when known, problem, correctness."""
    examples = []
    for r, feats in zip(records, rows):
        truth = None
        if r.first_error is not None:
            truth = [float(r.first_error == -1 or i < r.first_error) for i in range(len(r.steps))]
        examples.append(
            {
                "rows": feats,
                "tags": list(range(len(feats))),
                "targets": r.values(label, eta)[: len(feats)],
                "truth": truth,
                "problem": r.problem_id,
                "correct": r.correct,
            }
        )
    return examples


def evaluate_head(head: Any, examples: list[dict]) -> dict[str, Any]:
    """The LM trainer's validation metrics, for the head's step scores."""
    import torch

    from reasoner.training.prm_trainer import step_metrics

    x = torch.tensor([row for e in examples for row in e["rows"]], dtype=torch.float32)
    y = torch.tensor([t for e in examples for t in e["targets"]], dtype=torch.float32)
    truths = [t for e in examples for t in (e["truth"] if e["truth"] else [None] * len(e["rows"]))]
    with torch.no_grad():
        logits = head(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
    return step_metrics(examples, torch.sigmoid(logits).tolist(), y.tolist(), truths, float(loss))


def train_evidence_prm(cfg: Any, records: list[LabeledSolution] | None, progress: bool) -> Path:
    """Train (or resume) an evidence PRM from a PRMTrainConfig; returns its final directory."""
    import torch

    from reasoner.models.evidence_prm import EvidenceHead, save_evidence_prm
    from reasoner.models.resolve import resolve_model_path
    from reasoner.models.token_evidence import FEATURE_GROUPS, FEATURES
    from reasoner.training.prm_loop import batch_indices, run_training, total_steps_for
    from reasoner.training.prm_trainer import split_by_problem

    label, eta = cfg.label_kind()
    if cfg.lora_rank or cfg.extra_layers or cfg.freeze_base or cfg.lm_loss_weight:
        raise ReasonerError(
            "train-prm: kind 'evidence' leaves the base unchanged; lora_rank, extra_layers, "
            "freeze_base and lm_loss_weight apply to kind 'lm' only"
        )
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
    base = cfg.base if cfg.base == "embedded" else str(resolve_model_path(cfg.base, "policy"))
    resolve_model_path(base, "policy")  # a clear error now, not after the split
    train_recs, val_recs = split_by_problem(records, cfg.val_fraction, cfg.seed)
    if cfg.slip_negatives < 0:
        raise ReasonerError(f"train-prm: slip_negatives must be >= 0, got {cfg.slip_negatives}")
    if cfg.slip_negatives:
        from reasoner.training.augment import slip_negatives

        train_recs = train_recs + slip_negatives(train_recs, cfg.slip_negatives, cfg.seed)
    cache = Path(cfg.features_cache) if cfg.features_cache else out / "features.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows = record_features(train_recs + val_recs, base, cache, progress)
    train_ex = _examples(train_recs, rows[: len(train_recs)], label, eta)
    val_ex = _examples(val_recs, rows[len(train_recs) :], label, eta)
    names = [f for f in FEATURES if any(f in FEATURE_GROUPS[g] for g in cfg.evidence_groups)]
    columns = [FEATURES.index(f) for f in names]
    for e in train_ex + val_ex:
        e["rows"] = [[row[c] for c in columns] for row in e["rows"]]
    x = torch.tensor([row for e in train_ex for row in e["rows"]], dtype=torch.float32)
    y = torch.tensor([t for e in train_ex for t in e["targets"]], dtype=torch.float32)
    if not len(x):
        raise ReasonerError(f"train-prm: the records in {cfg.data} hold no steps to train on")
    head = EvidenceHead(len(names), cfg.evidence_hidden)
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0).clamp(min=1e-3))
    optim = torch.optim.AdamW(
        head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
    )
    total_steps = total_steps_for(cfg, len(x))

    def loss_at(step: int) -> Any:
        idx = torch.tensor(batch_indices(step, len(x), cfg.batch_size, cfg.seed))
        return torch.nn.functional.binary_cross_entropy_with_logits(head(x[idx]), y[idx])

    params = list(head.parameters())
    run_training(
        cfg,
        out,
        head,
        optim,
        params,
        total_steps,
        loss_at,
        lambda: evaluate_head(head, val_ex) if val_ex else {},
        f"train-prm ({label})",
        progress,
    )
    summary = {
        "kind": "evidence",
        "features": cfg.evidence_groups,
        "label": label,
        "eta": eta,
        "train_records": len(train_ex),
        "slip_negatives": cfg.slip_negatives,
        "val_records": len(val_ex),
        "steps": total_steps,
        "val": evaluate_head(head, val_ex) if val_ex else {},
    }
    final = save_evidence_prm(out / "final", head.eval(), base, names, {"training": summary})
    (final / "prm_training.json").write_text(json.dumps(summary, indent=2))
    return final

"""Train an evidence PRM (kind "evidence"): a step-value head over the base LM's token evidence.

The loss is the same soft-target BCE as the LM PRM's (label v in [0, 1] per step, any label kind:
ER with float eta, soft, hard, ORM, exact); all records are used, the validation split is by
problem, and the metrics are the LM trainer's (reasoner.training.prm_metrics). The base LM is
frozen, so its features are computed once per record and cached beside the run (features.pt,
keyed by the records and the base): a rerun, or another label kind on the same data, only
retrains the head, which takes seconds. `train_evidence_prm` reads top to bottom: data, features,
head, the shared loop, the save (a base other than "embedded" is linked into the checkpoint).
Under torchrun rank 0 computes (and caches) the features while the others wait, then every rank
trains the DDP-wrapped head on its shard of each global batch; rank 0 alone saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from reasoner.models.base import ScoreRequest
from reasoner.models.evidence_prm import EvidenceFeatures, EvidenceHead, save_evidence_prm
from reasoner.models.resolve import resolve_model_path
from reasoner.models.token_evidence import FEATURE_GROUPS, FEATURES
from reasoner.models.torch_state import load_torch_state, state_entries
from reasoner.training.distributed import leave
from reasoner.training.prm_config import EvidencePRMTrainConfig
from reasoner.training.prm_data import load_records, train_val_records
from reasoner.training.prm_loop import batch_indices, run_training, start_run, total_steps_for
from reasoner.training.prm_metrics import step_metrics
from reasoner.training.records import LabeledSolution
from reasoner.types import ReasonerError

BASE_DIR = "base"  # where a checkpoint keeps its (linked) base, relative to itself


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
    key = _fingerprint(records, base)
    if cache.exists():  # tensors and plain values only: no code runs from the file
        hint = f"delete {cache} to recompute the features"
        saved_key, saved_rows = state_entries(
            load_torch_state(cache, hint), cache, ("key", "rows"), hint
        )
        if saved_key == key:
            return saved_rows
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
    device = next(head.parameters()).device
    x = torch.tensor([row for e in examples for row in e["rows"]], dtype=torch.float32)
    y = torch.tensor([t for e in examples for t in e["targets"]], dtype=torch.float32)
    truths = [t for e in examples for t in (e["truth"] if e["truth"] else [None] * len(e["rows"]))]
    with torch.no_grad():
        logits = head(x.to(device)).cpu()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
    return step_metrics(examples, torch.sigmoid(logits).tolist(), y.tolist(), truths, float(loss))


def reference_base(base: str, final: Path) -> str:
    """The base as the checkpoint records it: "embedded" as it is; any other base is linked (or,
    across file systems, copied) into final/base/ and recorded as "base", relative to the
    checkpoint, so the checkpoint directory can be moved or copied whole."""
    if base == "embedded":
        return base
    target = final / BASE_DIR
    shutil.rmtree(target, ignore_errors=True)  # a rerun's
    final.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base, target, copy_function=_link_or_copy)
    return BASE_DIR


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no space used) where the file system allows one, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def train_evidence_prm(
    cfg: EvidencePRMTrainConfig,
    records: list[LabeledSolution] | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) an evidence PRM; returns its final directory."""
    cfg.check()
    label, eta = cfg.label_kind()
    out, world = start_run(cfg)
    records = load_records(cfg, records)
    base = cfg.base if cfg.base == "embedded" else str(resolve_model_path(cfg.base, "policy"))
    resolve_model_path(base, "policy")  # a clear error now, not after the split
    train_recs, val_recs = train_val_records(cfg, records)

    # the frozen base's evidence rows of every record (cached), reduced to the chosen groups
    cache = Path(cfg.features_cache) if cfg.features_cache else out / "features.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    if world.is_main:  # the others then read rank 0's cache
        rows = record_features(train_recs + val_recs, base, cache, progress)
    world.barrier()
    if not world.is_main:
        rows = record_features(train_recs + val_recs, base, cache, False)
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

    # the head, its input normalisation set from the training rows, and the shared loop
    head = EvidenceHead(len(names), cfg.evidence_hidden)
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0).clamp(min=1e-3))
    head, x, y = head.to(world.device), x.to(world.device), y.to(world.device)
    wrapped = world.wrap(head)  # DDP under torchrun: the forward that syncs gradients
    optim = torch.optim.AdamW(
        head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
    )
    total_steps = total_steps_for(cfg, len(x))

    def loss_at(step: int) -> Any:
        """This rank's share of the global batch's mean loss (the whole mean in one process)."""
        order = batch_indices(step, len(x), cfg.batch_size, cfg.seed)
        idx = torch.tensor(world.shard(order), device=world.device)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            wrapped(x[idx]), y[idx], reduction="sum"
        )
        return world.global_mean(bce, len(idx))

    def validate() -> dict[str, Any]:
        return evaluate_head(head, val_ex) if val_ex else {}

    params = list(head.parameters())
    desc = f"train-prm ({label})"
    run_training(
        cfg, out, head, optim, params, total_steps, loss_at, validate, desc, progress, world
    )

    # the checkpoint (rank 0): the head and its feature names, with the training summary
    final = out / "final"
    if not world.is_main:
        leave(world)  # waits there until rank 0 has saved
        return final
    summary = {
        "kind": "evidence",
        "features": cfg.evidence_groups,
        "label": label,
        "eta": eta,
        "train_records": len(train_ex),
        "slip_negatives": cfg.slip_negatives,
        "val_records": len(val_ex),
        "steps": total_steps,
        "processes": world.size,
        "val": validate(),
    }
    saved_base = reference_base(base, final)
    final = save_evidence_prm(final, head.cpu().eval(), saved_base, names, {"training": summary})
    (final / "prm_training.json").write_text(json.dumps(summary, indent=2))
    leave(world)
    return final

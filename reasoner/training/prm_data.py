"""The PRM trainers' data: labeled records read and capped, split by problem, slip negatives added.

Both trainers (lm_prm_trainer, evidence_trainer) take their train and validation records from
here, so they hold out the same problems for the same seed and augment the same way.
"""

from __future__ import annotations

import random

from reasoner.training.augment import slip_negatives
from reasoner.training.prm_config import PRMTrainConfig
from reasoner.training.records import LabeledSolution, read_records
from reasoner.types import ReasonerError


def load_records(
    cfg: PRMTrainConfig, records: list[LabeledSolution] | None
) -> list[LabeledSolution]:
    """The given records, or those of cfg.data; the first cfg.limit when set; never empty."""
    if records is None:
        records = read_records(cfg.data)
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise ReasonerError(f"no labeled records in {cfg.data}")
    return records


def split_by_problem(
    records: list[LabeledSolution], val_fraction: float, seed: int
) -> tuple[list[LabeledSolution], list[LabeledSolution]]:
    """Train/validation split by problem id, so no problem is on both sides."""
    ids = sorted({r.problem_id for r in records})
    random.Random(seed).shuffle(ids)
    n_val = int(round(len(ids) * val_fraction))
    val_ids = set(ids[:n_val])
    return [r for r in records if r.problem_id not in val_ids], [
        r for r in records if r.problem_id in val_ids
    ]


def train_val_records(
    cfg: PRMTrainConfig, records: list[LabeledSolution]
) -> tuple[list[LabeledSolution], list[LabeledSolution]]:
    """The split by problem, the training side with cfg.slip_negatives copies per record added."""
    train_recs, val_recs = split_by_problem(records, cfg.val_fraction, cfg.seed)
    if cfg.slip_negatives:
        train_recs = train_recs + slip_negatives(train_recs, cfg.slip_negatives, cfg.seed)
    return train_recs, val_recs

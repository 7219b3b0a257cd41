"""Train a PRM of either kind: the one entry point, picking the trainer of the config's class.

`LMPRMTrainConfig` goes to reasoner.training.lm_prm_trainer (fine-tune the base at step tags),
`EvidencePRMTrainConfig` to reasoner.training.evidence_trainer (a head over the base's token
evidence). `PRMTrainConfig.from_toml(path)` loads either, by the file's `kind`.
"""

from __future__ import annotations

from pathlib import Path

from reasoner.training.evidence_trainer import train_evidence_prm
from reasoner.training.lm_prm_trainer import train_lm_prm
from reasoner.training.prm_config import (
    EvidencePRMTrainConfig,
    LMPRMTrainConfig,
    PRMTrainConfig,
)
from reasoner.training.records import LabeledSolution
from reasoner.types import ReasonerError

__all__ = ["EvidencePRMTrainConfig", "LMPRMTrainConfig", "PRMTrainConfig", "train_prm"]


def train_prm(
    cfg: PRMTrainConfig, records: list[LabeledSolution] | None = None, progress: bool = True
) -> Path:
    """Train (or resume) the PRM `cfg` describes; returns the directory of its final checkpoint."""
    if isinstance(cfg, EvidencePRMTrainConfig):
        return train_evidence_prm(cfg, records, progress)
    if isinstance(cfg, LMPRMTrainConfig):
        return train_lm_prm(cfg, records, progress)
    raise ReasonerError(
        f"train-prm: {type(cfg).__name__} names no PRM kind; use LMPRMTrainConfig or "
        f"EvidencePRMTrainConfig (or PRMTrainConfig.from_toml, which reads `kind`)"
    )

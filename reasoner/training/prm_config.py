"""PRM training configs: one class per trainer kind, chosen by the `kind` key of a TOML file.

`LMPRMTrainConfig` (kind "lm") fine-tunes the base LM as a PRM read at step tags;
`EvidencePRMTrainConfig` (kind "evidence") trains a small head over the frozen base's token
evidence. Both share `PRMTrainConfig`'s fields (data, label, optimisation, checkpoints). A key of
the other kind is an error that says which kind it belongs to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from reasoner.config_io import Config, build_config, check_keys, check_min
from reasoner.labels import resolve_label_kind
from reasoner.models.token_evidence import FEATURE_GROUPS
from reasoner.types import ReasonerError

__all__ = [
    "PRM_CONFIGS",
    "PRM_KINDS",
    "EvidencePRMTrainConfig",
    "LMPRMTrainConfig",
    "PRMTrainConfig",
]

# the StepFormat fields a PRM's input is built from: what `prm_format` may override
PRM_FORMAT_FIELDS = (
    "negative_token",
    "positive_token",
    "prm_prompt_template",
    "prm_step_joiner",
    "step_tag",
)


@dataclass
class PRMTrainConfig(Config):
    """What every PRM trainer reads: the labeled data, the label, the optimisation schedule and
    the checkpoints. Build one of the kind's class, or load a file with `from_toml` (by `kind`)."""

    kind: ClassVar[str]  # "lm" or "evidence": set by each subclass, the `kind` key of a file
    data: str = "runs/labels/rollouts.jsonl"
    base: str = "embedded"  # any HF causal LM dir; "embedded" = the shipped policy
    out_dir: str = "runs/prm"
    label: str = "er"  # er | soft | hard | orm | exact (or "er-2", "er:0.5" ...)
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
    eval_every: int = 100
    save_every: int = 100
    threads: int = 2
    limit: int = 0  # 0 = every record (never a silent cap)
    # slip-negative copies per training record (reasoner.training.augment): minimal pairs that
    # differ from a labeled solution in one equation's result; validation data is never augmented
    slip_negatives: int = 0

    def validate(self) -> None:
        """A label kind the records can give; positive epochs, batch, learning rate and clip,
        every count in range: a run that would train nothing is refused before any work."""
        self.label_kind()
        if self.slip_negatives < 0:
            raise ReasonerError(
                f"train-prm: slip_negatives must be >= 0, got {self.slip_negatives}"
            )
        for key in ("batch_size", "eval_every", "save_every", "threads"):
            check_min(self, key, 1, prefix="train-prm: ")
        for key in ("epochs", "lr", "grad_clip"):
            check_min(self, key, 0.0, strict=True, prefix="train-prm: ")
        for key in ("warmup_steps", "weight_decay", "limit"):
            check_min(self, key, 0, prefix="train-prm: ")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ReasonerError(
                f"train-prm: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}"
            )
        if not 0.0 <= self.val_fraction < 1.0:  # 1 would leave nothing to train on
            raise ReasonerError(
                f"train-prm: val_fraction must be in [0, 1), got {self.val_fraction!r}"
            )

    def label_kind(self) -> tuple[str, float | None]:
        """The resolved label kind and eta (eta only for "er"), or a clear error."""
        try:
            return resolve_label_kind(
                self.label, self.eta if self.label.strip().lower() == "er" else None
            )
        except ValueError as err:
            raise ReasonerError(f"train-prm: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """The fields, with the kind first (what train_config.json holds)."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        source: str = "config",
        overrides: dict[str, Any] | None = None,
    ) -> PRMTrainConfig:
        """The config of the kind named by `kind` (overrides first, then data; default "lm", or
        this class's kind when called on a kind's class), every key checked."""
        data, overrides = dict(data), dict(overrides or {})
        given = overrides.pop("kind", None)
        in_data = data.pop("kind", None)
        own = getattr(cls, "kind", None)  # None on the shared base class
        kind = given if given is not None else in_data
        if kind is None:
            kind = own or "lm"
        if kind not in PRM_CONFIGS:
            where = "overrides" if given is not None else source
            raise ReasonerError(
                f"{where}: train-prm: kind must be one of {', '.join(PRM_KINDS)}, got {kind!r}"
            )
        target = PRM_CONFIGS[kind]
        if own is not None and target is not cls:
            raise ReasonerError(f"{source}: is kind {kind!r}, but a kind {own!r} config was asked")
        what = "the overrides make it" if given is not None else "this file is"
        known = ["kind", *(f.name for f in dataclasses.fields(target))]
        for where, mapping in ((source, data), ("overrides", overrides)):
            for key in mapping:
                other = _kind_of_option(key)
                if other is not None and other != kind:
                    raise ReasonerError(
                        f"{where}: {key!r} is an option of kind {other!r}, {what} kind {kind!r}"
                    )
            check_keys(mapping, known, where)
        return build_config(target, data, overrides, source)


@dataclass
class LMPRMTrainConfig(PRMTrainConfig):
    """Kind "lm": fine-tune the base as a PRM read at step tags (reasoner.training.lm_prm_trainer)."""

    kind: ClassVar[str] = "lm"
    max_length: int = 512
    dtype: str = "float32"  # float32 | bfloat16
    lora_rank: int = 0  # > 0: train LoRA adapters through peft (for large bases)
    # overrides of the PRM input fields of the base's step format (prm_prompt_template,
    # prm_step_joiner, step_tag ...); saved with the checkpoint so scoring builds the same input
    prm_format: dict[str, Any] = dataclasses.field(default_factory=dict)
    # weight of an auxiliary next-token loss on the solution tokens: keeps the base policy's
    # knowledge of what a right step looks like, which the tag readout can then use (0 = off)
    lm_loss_weight: float = 0.0
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
    # add the step tag to the tokenizer as a new special token (resizing the embeddings; saved
    # with the checkpoint), for a base in which the tag is several tokens ("ки" in SmolLM2)
    add_step_tag_token: bool = False

    def validate(self) -> None:
        """The shared checks, then: PRM input fields only, a non-negative LM loss weight, and
        something left to train under freeze_base."""
        super().validate()
        unknown = sorted(set(self.prm_format) - set(PRM_FORMAT_FIELDS))
        if unknown:
            raise ReasonerError(
                f"train-prm: prm_format keys {unknown} are not PRM input fields; valid: "
                f"{', '.join(PRM_FORMAT_FIELDS)}"
            )
        if self.lm_loss_weight < 0:
            raise ReasonerError(
                f"train-prm: lm_loss_weight must be >= 0, got {self.lm_loss_weight}"
            )
        check_min(self, "max_length", 2, prefix="train-prm: ")
        for key in ("lora_rank", "extra_layers"):
            check_min(self, key, 0, prefix="train-prm: ")
        if self.dtype not in ("float32", "bfloat16"):
            raise ReasonerError(
                f"train-prm: dtype must be 'float32' or 'bfloat16', got {self.dtype!r}"
            )
        if self.freeze_base and self.extra_layers < 1:
            raise ReasonerError(
                "train-prm: freeze_base needs extra_layers >= 1 (nothing left to train)"
            )


@dataclass
class EvidencePRMTrainConfig(PRMTrainConfig):
    """Kind "evidence": a small head over the frozen base's token evidence
    (reasoner.models.evidence_prm, trained by reasoner.training.evidence_trainer)."""

    kind: ClassVar[str] = "evidence"
    # hidden units of the head's MLP
    evidence_hidden: int = 16
    # where the base's features of the records are cached ("" = out_dir/features.pt; PRMs of
    # several label kinds on the same records can share one)
    features_cache: str = ""
    # feature groups the head reads (reasoner.models.token_evidence.FEATURE_GROUPS): "token"
    # (the base's own token probabilities) and "equation" (a calculator check of the step's
    # equations, for suites whose steps compute "a op b = c")
    evidence_groups: list[str] = dataclasses.field(default_factory=lambda: ["token", "equation"])

    def validate(self) -> None:
        """The shared checks, then: known feature groups and a head of at least one unit."""
        super().validate()
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


PRM_CONFIGS: dict[str, type[PRMTrainConfig]] = {
    "lm": LMPRMTrainConfig,
    "evidence": EvidencePRMTrainConfig,
}
PRM_KINDS = tuple(PRM_CONFIGS)


def _kind_of_option(key: str) -> str | None:
    """The kind whose own (not shared) option `key` is, or None."""
    shared = {f.name for f in dataclasses.fields(PRMTrainConfig)}
    for kind, cls in PRM_CONFIGS.items():
        if key not in shared and key in {f.name for f in dataclasses.fields(cls)}:
            return kind
    return None

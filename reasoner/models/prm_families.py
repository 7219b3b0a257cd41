"""The built-in PRM families: the equation checker, the evidence PRM and the HF-checkpoint PRM.

The "lm" family reads any HF checkpoint the way its step format's PRMFormat says
(reasoner.prm_format): our LM ER-PRMs and every real family (Math-Shepherd, RLHFlow,
Qwen2.5-Math-PRM, Skywork-o1-Open-PRM, ER-PRM), named by preset:
`load_prm("/models/Qwen2.5-Math-PRM-7B", "hf", "qwen2.5-math-prm")`.

They are registered through the `reasoner.prms` entry points in pyproject.toml exactly as a third
party's family would be (reasoner.models.base.PRMFamily says how), so load_prm names none of
them; BUILTIN_FAMILIES only lets a source tree that is not installed find them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasoner.models.base import PRMFamily, ProcessRewardModel, check_backend
from reasoner.models.checker_prm import CHECKER_SPEC, EquationCheckerPRM
from reasoner.models.evidence_prm import EvidencePRM, is_evidence_prm
from reasoner.models.hf_prm import HFPRM
from reasoner.models.resolve import EMBEDDED_LM_PRM
from reasoner.models.vllm_prm import VLLMPRM
from reasoner.types import ReasonerError

# the PRM options an evidence PRM takes beside a vLLM policy (on HF it takes all of them)
EVIDENCE_OPTIONS_ON_VLLM = ("dtype", "threads", "trust_remote_code")


class EquationCheckerFamily(PRMFamily):
    """The "equation-checker" family: the model-free reference verifier for arith-style chains."""

    name = CHECKER_SPEC

    @classmethod
    def load(
        cls, path: str | None, backend: str, step_format: Any, **options: Any
    ) -> ProcessRewardModel:
        """The checker (it has no checkpoint; the format and options do not apply to it)."""
        if path:
            raise ReasonerError(f"{CHECKER_SPEC!r} is model-free: it takes no checkpoint path")
        return EquationCheckerPRM()


class EvidenceFamily(PRMFamily):
    """The "evidence" family: a step-value head over a base LM's token evidence (a checkpoint
    holding evidence_prm.json; the default is the shipped one, "embedded")."""

    name = "evidence"
    default = "embedded"

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A directory holding evidence_prm.json."""
        return is_evidence_prm(path)

    @classmethod
    def load(
        cls, path: str | None, backend: str, step_format: Any, **options: Any
    ) -> ProcessRewardModel:
        """An EvidencePRM on HF whatever the backend: it reads its base token by token, which
        only the HF backend exposes (the shipped one is tiny; on vLLM only the common options
        apply to it)."""
        if backend != "hf":
            options = {k: v for k, v in options.items() if k in EVIDENCE_OPTIONS_ON_VLLM}
        return EvidencePRM(path or cls.default, step_format=step_format, **options)


class LMFamily(PRMFamily):
    """The "lm" family: an HF checkpoint read as its step format's PRMFormat says (a causal LM's
    label tokens, a token-classification head or a value head: our LM ER-PRMs and the real
    families' presets) on the HF or the vLLM backend; any checkpoint no other family claims.
    The default is "embedded-lm"."""

    name = "lm"
    default = EMBEDDED_LM_PRM

    @classmethod
    def load(
        cls, path: str | None, backend: str, step_format: Any, **options: Any
    ) -> ProcessRewardModel:
        """HFPRM or VLLMPRM (by backend) at `path`, else the shipped LM ER-PRM; `step_format` (a
        preset such as "qwen2.5-math-prm", a table or a file) names the family's format."""
        check_backend(backend)
        spec = path or cls.default
        if backend == "vllm":
            return VLLMPRM(spec, step_format=step_format, **options)
        return HFPRM(spec, step_format=step_format, **options)


BUILTIN_FAMILIES: tuple[type[PRMFamily], ...] = (EquationCheckerFamily, EvidenceFamily, LMFamily)

"""The five PRM families by their #16 preset name: builder, reference loader, reference scorer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import references, tiny_models
from .tiny_tokenizers import MISTRAL_COMMON_HINT, mistral_sentencepiece_path


def _no_extra_needed() -> str | None:
    return None


def _mistral_tokenizer_missing() -> str | None:
    return None if mistral_sentencepiece_path() is not None else MISTRAL_COMMON_HINT


@dataclass(frozen=True)
class Family:
    """One PRM family: how to build a tiny checkpoint of it and how its card scores steps."""

    name: str  # the preset name in #16 (load_prm(dir, backend, name), --step-format name)
    card: str  # where the documented usage lives
    build: Callable[..., Path]
    load: Callable[[Path], tuple]
    score: Callable[..., list[float]]
    # why the builder cannot run here (a package outside the project's dependencies), or None
    missing: Callable[[], str | None] = _no_extra_needed


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "math-shepherd",
            "https://huggingface.co/peiyi9979/math-shepherd-mistral-7b-prm",
            tiny_models.build_math_shepherd,
            references.load_math_shepherd,
            references.score_math_shepherd,
            missing=_mistral_tokenizer_missing,
        ),
        Family(
            "rlhflow",
            "https://github.com/RLHFlow/RLHF-Reward-Modeling/tree/main/math-rm",
            tiny_models.build_rlhflow,
            references.load_rlhflow,
            references.score_rlhflow,
        ),
        Family(
            "qwen2.5-math-prm",
            "https://huggingface.co/Qwen/Qwen2.5-Math-PRM-7B",
            tiny_models.build_qwen_math_prm,
            references.load_qwen_math_prm,
            references.score_qwen_math_prm,
        ),
        Family(
            "skywork-prm",
            "https://huggingface.co/Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",
            tiny_models.build_skywork_prm,
            references.load_skywork_prm,
            references.score_skywork_prm,
        ),
        Family(
            "er-prm",
            "https://github.com/hanningzhang/ER-PRM",
            tiny_models.build_er_prm,
            references.load_er_prm,
            references.score_er_prm,
        ),
    )
}

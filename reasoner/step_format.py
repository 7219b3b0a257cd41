"""StepFormat: the one definition of how steps are delimited, prompted and tagged for the PRM.

The policy, the rollout labeler, the PRM trainer and the PRM scorer all take their formatting from
a StepFormat, so a separator mismatch between generation, PRM training and PRM inference cannot
happen by construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from reasoner.types import ReasonerError


@dataclass(frozen=True)
class StepFormat:
    """How steps look in policy output and how PRM inputs are built from them."""

    delimiter: str = "\n\n"  # what ends a step in policy output
    prompt_template: str = "Question: {problem}\nAnswer:\n"  # used when use_chat_template is False
    use_chat_template: bool = False
    system_prompt: str | None = None
    user_template: str = "{problem}"  # the user turn when use_chat_template is True
    step_tag: str = "<|step|>"  # placed after each step in the PRM input; must be one token
    positive_token: str = "+"  # PRM label tokens read at each tag position
    negative_token: str = "-"
    prm_step_joiner: str = "\n"  # text placed after a step's tag, before the next step
    prm_prompt_template: str = "{problem}\n"  # PRM input before the first step
    max_step_tokens: int = 96  # a step longer than this is cut and marked truncated
    max_steps: int = 12  # a solution deeper than this is cut

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            want = _FIELD_TYPES[f.name]
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            if not ok and not (value is None and f.name in _OPTIONAL_FIELDS):
                raise ReasonerError(
                    f"StepFormat.{f.name} must be {_TYPE_NAMES[want]}, got {value!r}"
                )
        if not self.delimiter:
            raise ReasonerError("StepFormat.delimiter must be a non-empty string")
        if "{problem}" not in self.prompt_template:
            raise ReasonerError("StepFormat.prompt_template must contain '{problem}'")
        if self.max_step_tokens < 1 or self.max_steps < 1:
            raise ReasonerError("StepFormat.max_step_tokens and max_steps must be >= 1")

    # ---- policy side -------------------------------------------------------------------------
    def render_prompt(self, problem: str, tokenizer: Any = None) -> str:
        """The text the policy is conditioned on before its first step."""
        if not self.use_chat_template:
            return self.prompt_template.format(problem=problem)
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ReasonerError(
                "StepFormat.use_chat_template is set but the tokenizer has no chat template"
            )
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.user_template.format(problem=problem)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode_prompt(self, problem: str, tokenizer: Any, max_context: int) -> list[int]:
        """Prompt ids (chat template or plain template, with BOS when the model uses one).

        Every backend and the evidence PRM encode prompts here, so their token ids agree."""
        ids = tokenizer.encode(self.render_prompt(problem, tokenizer), add_special_tokens=False)
        bos = tokenizer.bos_token_id
        if not self.use_chat_template and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        if len(ids) >= max_context:
            raise ReasonerError(
                f"prompt is {len(ids)} tokens, longer than the policy's context ({max_context})"
            )
        return ids

    def split_steps(self, text: str) -> list[str]:
        """Split a complete solution text into steps (empty pieces dropped)."""
        return [s.strip() for s in text.split(self.delimiter) if s.strip()]

    def join_steps(self, steps: list[str]) -> str:
        return self.delimiter.join(steps)

    # ---- PRM side ----------------------------------------------------------------------------
    def prm_segments(self, problem: str, steps: list[str]) -> list[tuple[str, bool]]:
        """The PRM input as (text, is_tag) pieces; tags are inserted as single token ids by the caller."""
        pieces: list[tuple[str, bool]] = [(self.prm_prompt_template.format(problem=problem), False)]
        for i, step in enumerate(steps):
            pieces.append((step.strip(), False))
            pieces.append((self.step_tag, True))
            if i + 1 < len(steps):
                pieces.append((self.prm_step_joiner, False))
        return pieces

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepFormat:
        """A StepFormat from a dict of fields; unknown fields and wrong types are clear errors."""
        if not isinstance(data, dict):
            raise ReasonerError(f"a step format is a table of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ReasonerError(
                f"unknown StepFormat field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> StepFormat:
        """A StepFormat from a TOML file of fields; a bad file is a clear error naming it."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ReasonerError(f"{path}: not a readable TOML step format: {err}") from err
        try:
            return cls.from_dict(data)
        except ReasonerError as err:
            raise ReasonerError(f"{path}: {err}") from err


# each field's type, checked on construction (a step_format.json or TOML with a wrong type is a
# clear error, not a TypeError deep in generation)
_FIELD_TYPES: dict[str, type] = {
    f.name: {"str": str, "bool": bool, "int": int, "str | None": str}[str(f.type)]
    for f in dataclasses.fields(StepFormat)
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}
_OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(StepFormat) if "None" in str(f.type)}

# Named presets so configs can say `step_format = "math-shepherd"` instead of repeating fields.
PRESETS: dict[str, StepFormat] = {
    "arith": StepFormat(),
    "math-shepherd": StepFormat(
        step_tag="ки",
        positive_token="+",
        negative_token="-",
        prm_step_joiner="\n",
        prm_prompt_template="{problem} ",
        max_step_tokens=256,
        max_steps=20,
    ),
    "qwen-chat": StepFormat(
        use_chat_template=True,
        system_prompt="Please reason step by step, and put your final answer within \\boxed{}.",
        step_tag="ки",
        max_step_tokens=256,
        max_steps=20,
    ),
}


def get_step_format(spec: str | StepFormat | dict | None) -> StepFormat:
    """Resolve a preset name, a dict of fields, a TOML path or a StepFormat into a StepFormat."""
    if spec is None:
        return PRESETS["arith"]
    if isinstance(spec, StepFormat):
        return spec
    if isinstance(spec, dict):
        return StepFormat.from_dict(spec)
    if spec in PRESETS:
        return PRESETS[spec]
    if str(spec).endswith(".toml") and Path(spec).is_file():
        return StepFormat.from_toml(spec)
    raise ReasonerError(f"unknown step format {spec!r}; presets: {sorted(PRESETS)} or a .toml path")

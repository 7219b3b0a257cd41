"""StepFormat: the one definition of how steps are delimited, prompted and tagged for the PRM.

The policy, the rollout labeler, the PRM trainer and the PRM scorer all take their formatting from
a StepFormat, so a separator mismatch between generation, PRM training and PRM inference cannot
happen by construction. The PRM side is a PRMFormat (reasoner.prm_format): either `prm` (a real
family's preset or a table of its fields) or, for the PRMs this project trains, the flat fields
step_tag / positive_token / negative_token / prm_step_joiner / prm_prompt_template.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.config_io import read_toml
from reasoner.prm_format import (
    PRM_PRESETS,
    PRMFormat,
    fill_problem,
    legacy_prm_format,
    prm_format_from,
)
from reasoner.types import ReasonerError

__all__ = ["PRESETS", "PRMFormat", "StepFormat", "fill_problem", "get_step_format"]


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
    # the PRM side as a PRMFormat (a preset name or a table of its fields are accepted); None: the
    # flat PRM fields above. Not both: a format with `prm` keeps those at their defaults.
    prm: PRMFormat | None = None
    # a regex for the model's own step markers ("Step 2:"): a line starting with one also starts a
    # new step, as the delimiter does (chat models write single "\n" inside a step); "": none
    step_markers: str = ""

    def __post_init__(self) -> None:
        if self.prm is not None:
            object.__setattr__(self, "prm", prm_format_from(self.prm, "StepFormat.prm"))
            changed = [f for f in _LEGACY_PRM_FIELDS if getattr(self, f) != _DEFAULTS[f]]
            if changed:
                raise ReasonerError(
                    f"StepFormat: the PRM input is given twice, as prm and as {changed}: "
                    f"give it one way"
                )
        for f in dataclasses.fields(self):
            if f.name == "prm":
                continue
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
        if self.step_markers:
            try:
                re.compile(self.step_markers)
            except re.error as err:
                raise ReasonerError(
                    f"StepFormat.step_markers is not a valid regex ({err}): {self.step_markers!r}"
                ) from err
        if self.max_step_tokens < 1 or self.max_steps < 1:
            raise ReasonerError("StepFormat.max_step_tokens and max_steps must be >= 1")

    # ---- policy side -------------------------------------------------------------------------
    def render_prompt(self, problem: str, tokenizer: Any = None) -> str:
        """The text the policy is conditioned on before its first step."""
        if not self.use_chat_template:
            return fill_problem(self.prompt_template, problem)
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ReasonerError(
                "StepFormat.use_chat_template is set but the tokenizer has no chat template"
            )
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": fill_problem(self.user_template, problem)})
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
    @property
    def prm_format(self) -> PRMFormat:
        """The PRM input and readout: `prm`, else the one the flat PRM fields describe."""
        if self.prm is not None:
            return self.prm
        return legacy_prm_format(
            self.step_tag,
            self.positive_token,
            self.negative_token,
            self.prm_step_joiner,
            self.prm_prompt_template,
        )

    def prm_segments(self, problem: str, steps: list[str]) -> list[tuple[str, bool]]:
        """The text-layout PRM input as (text, is_tag) pieces (tags are inserted as token ids by
        the caller): the prompt, then each step and its tag, the joiner between them."""
        fmt = self.prm_format
        if fmt.layout != "text":
            raise ReasonerError(f"PRM format {fmt.name!r} is a chat layout: it has no text pieces")
        pieces: list[tuple[str, bool]] = [(fill_problem(fmt.prompt, problem), False)]
        for i, step in enumerate(steps):
            pieces.append((step.strip() if fmt.strip_steps else step, False))
            pieces.append((fmt.step_tag, True))
            if i + 1 < len(steps):
                pieces.append((fmt.step_joiner, False))
        return pieces

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (step_format.json); `prm` and `step_markers` only when set."""
        data = dataclasses.asdict(self)
        if self.prm is None:
            del data["prm"]
        if not self.step_markers:
            del data["step_markers"]
        return data

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
        """A StepFormat from a TOML file of fields (a `[prm]` table: the PRM family's fields);
        a bad file is a clear error naming it."""
        return cls._from_file(path, read_toml(path, "step format file"))

    @classmethod
    def from_json(cls, path: str | Path) -> StepFormat:
        """A StepFormat from a JSON object of fields (as step_format.json stores one)."""
        try:
            data = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ReasonerError(f"{path}: not a readable JSON step format: {err}") from err
        return cls._from_file(path, data)

    @classmethod
    def _from_file(cls, path: str | Path, data: Any) -> StepFormat:
        try:
            return cls.from_dict(data)
        except ReasonerError as err:
            message = str(err)
            raise ReasonerError(message if str(path) in message else f"{path}: {message}") from err


# each field's type, checked on construction (a step_format.json or TOML with a wrong type is a
# clear error, not a TypeError deep in generation)
_FIELD_TYPES: dict[str, type] = {
    f.name: {"str": str, "bool": bool, "int": int, "str | None": str}[str(f.type)]
    for f in dataclasses.fields(StepFormat)
    if f.name != "prm"
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}
_OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(StepFormat) if "None" in str(f.type)}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(StepFormat)}
_LEGACY_PRM_FIELDS = (
    "step_tag",
    "positive_token",
    "negative_token",
    "prm_step_joiner",
    "prm_prompt_template",
)
# "Step 2:", "**Step 2:**", "## Step 2." at a line start
CHAT_STEP_MARKERS = r"(?:#{1,6} *|\*\*)?Step \d+ *[:.]"
_QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
# the policy side of a chat model's format: its chat template, "\n\n" between steps
_CHAT_POLICY = {"use_chat_template": True, "max_step_tokens": 256, "max_steps": 20}

# Named presets so configs can say `step_format = "math-shepherd"` instead of repeating fields.
PRESETS: dict[str, StepFormat] = {
    "arith": StepFormat(),
    # any chat model: its chat template, "\n\n" between steps, and its own "Step k:" markers
    "chat": StepFormat(step_markers=CHAT_STEP_MARKERS, **_CHAT_POLICY),
    "qwen-chat": StepFormat(system_prompt=_QWEN_SYSTEM, step_tag="ки", **_CHAT_POLICY),
    # the real PRM families (reasoner.prm_format.PRM_PRESETS), each with its usual policy side
    "math-shepherd": StepFormat(
        max_step_tokens=256, max_steps=20, prm=PRM_PRESETS["math-shepherd"]
    ),
    "rlhflow": StepFormat(prm=PRM_PRESETS["rlhflow"], **_CHAT_POLICY),
    "qwen2.5-math-prm": StepFormat(
        system_prompt=_QWEN_SYSTEM, prm=PRM_PRESETS["qwen2.5-math-prm"], **_CHAT_POLICY
    ),
    "skywork-prm": StepFormat(
        system_prompt=_QWEN_SYSTEM, prm=PRM_PRESETS["skywork-prm"], **_CHAT_POLICY
    ),
    "er-prm": StepFormat(max_step_tokens=256, max_steps=20, prm=PRM_PRESETS["er-prm"]),
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
    if str(spec).endswith(".json") and Path(spec).is_file():
        return StepFormat.from_json(spec)
    raise ReasonerError(
        f"unknown step format {spec!r}; presets: {sorted(PRESETS)} or a .toml / .json path"
    )

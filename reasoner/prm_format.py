"""PRMFormat: how a PRM family's input is built from (problem, steps) and how its scores are read.

A PRM family is data, not a class: where the step tag goes (or which chat turns carry the steps),
the text between a step and its readout position, how the string is tokenized, which token ids
are read, and the readout kind (two label tokens of the LM head, a token-classification head, a
value head). The presets are the real families, each as its model card documents it
(tests/prm_families/SPEC.md gives the sources); a user's own family is one TOML/JSON table of
these fields, every key and type checked by reasoner.config_io.

Layouts (`layout`):
- "text": `prompt` (with `{problem}`), then each step followed by `step_tag`, `step_joiner`
  between one step's tag and the next step; the readout is at the tag's token.
- "chat": the chat template over [system_prompt] + a user turn (`prompt`) + one assistant turn
  holding the steps, each followed by `step_tag` (Qwen2.5-Math-PRM); the readout is at the tag.
- "turns": the chat template over [system_prompt] + each step as a user turn (the first one
  prefixed by `prompt`), each answered by an assistant turn `assistant_turn` (RLHFlow); the
  readout is at the token before each assistant turn's text, the one predicting it.

Tokenization (`tokenize`): "whole" encodes the rendered string at once, as the cards do (no
per-piece dummy prefixes), and finds the readout tokens from character offsets; "pieces" encodes
the prompt and every step on its own and inserts the tag as its id (our trained PRMs, Skywork).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from reasoner.config_io import Config, build_config, check_min
from reasoner.types import ReasonerError

PROBLEM_FIELD = "{problem}"
LAYOUTS = ("text", "chat", "turns")
READOUTS = ("lm-labels", "token-class", "value-head")


def fill_problem(template: str, problem: str) -> str:
    """`template` with every `{problem}` replaced by the problem text; any other brace is literal
    (a system prompt's `\\boxed{}` is text, never a format field)."""
    return template.replace(PROBLEM_FIELD, problem)


@dataclass(frozen=True)
class PRMFormat(Config):
    """A PRM family's input and readout (the module docstring says what each layout builds)."""

    name: str = "custom"  # the family, for messages (a preset's name)
    layout: Literal["text", "chat", "turns"] = "text"
    prompt: str = "{problem}\n"  # text: before the first step; chat: the user turn; turns: the
    # first user turn's text before the first step
    system_prompt: str | None = None  # chat / turns: a system message (None: none is given)
    step_tag: str = ""  # text / chat: placed after each step; the readout is at its token
    step_joiner: str = ""  # text / chat: between a step's tag and the next step
    assistant_turn: str = ""  # turns: the assistant's reply after each step
    strip_steps: bool = False  # each step .strip()ped first
    tokenize: Literal["pieces", "whole"] = "whole"
    add_bos: bool = True  # pieces: prepend the tokenizer's BOS; whole: add_special_tokens
    readout: Literal["lm-labels", "token-class", "value-head"] = "lm-labels"
    positive_token: str = "+"  # lm-labels: score = softmax over these two logits, p(positive)
    negative_token: str = "-"
    positive_class: int = 1  # token-class: score = softmax over the classes, p(this class)
    # the ids the tokenizer must give (None: not checked): a card's ids, to catch a tokenizer
    # that is not the family's
    step_tag_id: int | None = None
    positive_id: int | None = None
    negative_id: int | None = None

    def validate(self) -> None:
        """Which fields each layout and readout take; one error naming the field."""
        where = f"PRM format {self.name!r}"
        if PROBLEM_FIELD not in self.prompt:
            raise ReasonerError(f"{where}: prompt must contain '{{problem}}', got {self.prompt!r}")
        if self.layout in ("text", "chat"):
            if not self.step_tag:
                raise ReasonerError(f"{where}: layout {self.layout!r} needs a step_tag")
            if self.assistant_turn:
                raise ReasonerError(f"{where}: assistant_turn is for layout 'turns' only")
        else:
            if not self.assistant_turn.strip():
                raise ReasonerError(f"{where}: layout 'turns' needs an assistant_turn")
            if self.step_tag or self.step_joiner:
                raise ReasonerError(
                    f"{where}: layout 'turns' reads before each assistant turn: it takes no "
                    f"step_tag or step_joiner"
                )
        if self.layout == "text" and self.system_prompt is not None:
            raise ReasonerError(f"{where}: system_prompt is for layouts 'chat' and 'turns'")
        if self.tokenize == "pieces" and self.layout != "text":
            raise ReasonerError(
                f"{where}: a chat template is rendered as one string: layout {self.layout!r} "
                f"needs tokenize = 'whole'"
            )
        if self.readout == "lm-labels":
            if not self.positive_token or not self.negative_token:
                raise ReasonerError(f"{where}: positive_token and negative_token must be given")
            if self.positive_token == self.negative_token:
                raise ReasonerError(f"{where}: positive_token and negative_token are the same")
        for key in ("positive_class", "step_tag_id", "positive_id", "negative_id"):
            check_min(self, key, 0, prefix=f"{where}: ")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (what step_format.json stores under "prm")."""
        return dataclasses.asdict(self)


def prm_format_from(spec: PRMFormat | str | dict, source: str = "PRM format") -> PRMFormat:
    """A PRMFormat from itself, a preset name or a table of fields (read from `source`)."""
    if isinstance(spec, PRMFormat):
        return spec
    if isinstance(spec, str):
        if spec not in PRM_PRESETS:
            raise ReasonerError(
                f"{source}: unknown PRM format {spec!r}; presets: {', '.join(sorted(PRM_PRESETS))}"
            )
        return PRM_PRESETS[spec]
    if not isinstance(spec, dict):
        raise ReasonerError(
            f"{source}: a PRM format is a preset name or a table of fields, got "
            f"{type(spec).__name__}"
        )
    return build_config(PRMFormat, spec, source=source)


# The real families, as each model card documents them (sources: tests/prm_families/SPEC.md).
PRM_PRESETS: dict[str, PRMFormat] = {
    f.name: f
    for f in (
        # peiyi9979/math-shepherd-mistral-7b-prm: f"{question} {output}", each step + " ки",
        # steps joined by "\n", encoded whole with BOS; p(▁+) of softmax(▁+, ▁-) at each ▁ки.
        # Steps are stripped: after trailing spaces " ки" is no longer the one token ▁ки.
        PRMFormat(
            name="math-shepherd",
            prompt="{problem} ",
            step_tag=" ки",
            step_joiner="\n",
            strip_steps=True,
            positive_token="+",
            negative_token="-",
        ),
        # RLHFlow/Llama3.1-8B-PRM-*: each step a user turn (the first after the question and a
        # space), each answered "+"; p(+) of softmax(+, -) at the token before the "+".
        PRMFormat(
            name="rlhflow",
            layout="turns",
            prompt="{problem} ",
            assistant_turn="+",
            strip_steps=True,
            add_bos=False,
            positive_token="+",
            negative_token="-",
        ),
        # Qwen/Qwen2.5-Math-PRM-7B: system, user question, assistant steps each followed by
        # <extra_0>, rendered then encoded whole; class 1 of the 2-class token head at <extra_0>.
        PRMFormat(
            name="qwen2.5-math-prm",
            layout="chat",
            prompt="{problem}",
            system_prompt="Please reason step by step, and put your final answer within \\boxed{}.",
            step_tag="<extra_0>",
            readout="token-class",
            positive_class=1,
        ),
        # Skywork/Skywork-o1-Open-PRM-Qwen-2.5-*: BOS + question + "\n", then each step encoded on
        # its own and followed by the "\n" id; sigmoid of the value head at each of those.
        PRMFormat(
            name="skywork-prm",
            prompt="{problem}\n",
            step_tag="\n",
            tokenize="pieces",
            readout="value-head",
        ),
        # ER-PRM (arXiv 2412.11006, hanningzhang/ER-PRM): f"{question} {output}", each step + " ки"
        # with nothing after the tag, encoded whole with BOS; p(" +") of softmax(" +", " -").
        PRMFormat(
            name="er-prm",
            prompt="{problem} ",
            step_tag=" ки",
            strip_steps=True,
            positive_token=" +",
            negative_token=" -",
        ),
    )
}


def legacy_prm_format(
    step_tag: str, positive_token: str, negative_token: str, joiner: str, prompt: str
) -> PRMFormat:
    """The PRM input StepFormat's flat fields describe (our trained PRMs, "embedded-lm"): text
    layout, stripped steps, pieces tokenized on their own with the tag inserted as its id."""
    return PRMFormat(
        name="step-format",
        prompt=prompt,
        step_tag=step_tag,
        step_joiner=joiner,
        strip_steps=True,
        tokenize="pieces",
        positive_token=positive_token,
        negative_token=negative_token,
    )

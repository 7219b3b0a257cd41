"""The step rules every policy backend shares: how sampled tokens become StepPieces.

A backend samples tokens; StepRules cuts them, one at a time, into steps:
- a step ends at the first token after which the step's decoded text contains the delimiter (only
  tokens whose text holds the delimiter's last character are checked); the delimiter's ids stay in
  the step's token_ids, so the tree's token prefix is exact, and its text is what precedes the
  delimiter, stripped;
- a bare delimiter (no text before it) closes nothing: its ids stay pending in the next step;
- with `step_markers` (chat models: "Step 2:"), a line that starts with a marker also ends the
  step before it: the step keeps its ids up to the newline, the marker's ids begin the next step;
- end-of-sequence ends the continuation (finished); a bare end-of-sequence joins the previous step;
- caps: a step reaching `max_step_tokens`, or a continuation reaching its token cap, is cut and
  marked truncated; a "step" request stops after one step, an "end" request after `max_steps`.
HFPolicy applies the rules as it decodes; VLLMPolicy replays vLLM's sampled tokens through them,
so with temperature 0 both backends produce the same steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reasoner.models.base import Continuation, GenRequest, StepPiece
from reasoner.step_format import StepFormat
from reasoner.types import ReasonerError


@dataclass
class StepRow:
    """One sample being cut into steps: its request, its caps, the steps so far, the pending step."""

    request: GenRequest
    slot: int  # index of the request in the backend call
    sample: int  # stream index of the sample: the request's first_sample + j for its j-th
    max_steps: int
    cap: int  # tokens the whole continuation may generate
    cont: Continuation = field(default_factory=Continuation)
    step_ids: list[int] = field(default_factory=list)  # the pending step
    step_lps: list[float] = field(default_factory=list)  # its ids' logprobs
    ended_step: bool = False  # a step was closed at the delimiter

    def generated_ids(self) -> list[int]:
        """The ids of the closed steps, in order (what follows the request's prefix)."""
        return [t for piece in self.cont.steps for t in piece.token_ids]


def row_caps(request: GenRequest, step_format: StepFormat, max_context: int) -> tuple[int, int]:
    """(max steps, token cap) for a request's samples: one step in "step" mode, else the request's
    (or the format's) max_steps; the cap also keeps the sequence inside the context."""
    max_steps = (request.max_steps or step_format.max_steps) if request.mode == "end" else 1
    cap = min(step_format.max_step_tokens * max_steps, max_context - len(request.prefix_ids) - 1)
    return max_steps, max(1, cap)


def start_rows(
    requests: list[GenRequest],
    step_format: StepFormat,
    max_context: int,
    row_type: type[StepRow] = StepRow,
) -> list[StepRow]:
    """The k rows of every request, request by request (a row's slot: its request's index; its
    sample: its stream index, first_sample + j)."""
    rows = []
    for slot, request in enumerate(requests):
        max_steps, cap = row_caps(request, step_format, max_context)
        first = request.first_sample
        rows.extend(row_type(request, slot, first + j, max_steps, cap) for j in range(request.k))
    return rows


def check_requests(requests: list[GenRequest], max_context: int) -> None:
    """A clear error for a request with k < 1, a negative first_sample or a prefix that leaves no
    room in the context."""
    for request in requests:
        if request.k < 1:
            raise ReasonerError(f"GenRequest.k must be >= 1, got {request.k}")
        if request.first_sample < 0:
            raise ReasonerError(f"GenRequest.first_sample must be >= 0, got {request.first_sample}")
    width = max((len(r.prefix_ids) for r in requests), default=0)
    if width >= max_context:
        raise ReasonerError(f"a prefix of {width} tokens exceeds the policy context {max_context}")


def eos_token_ids(eos: int | list[int] | None, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the generation config's `eos_token_id` (one or a list) and the
    tokenizer's."""
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids}


class StepRules:
    """The step rules for one tokenizer, step format and set of end-of-sequence ids."""

    def __init__(self, tokenizer: Any, step_format: StepFormat, eos_ids: set[int]):
        self.tokenizer = tokenizer
        self.step_format = step_format
        self.eos_ids = eos_ids
        self._last = step_format.delimiter[-1]
        self._vocab = len(tokenizer)
        self._maybe: dict[int, bool] = {}
        markers = step_format.step_markers
        self._marker = re.compile(rf"\n[ \t]*(?:{markers})") if markers else None

    def maybe_delimiter(self, tok: int) -> bool:
        """Whether a vocabulary token's text holds the delimiter's last character: only such a
        token can end a step."""
        hit = self._maybe.get(tok)
        if hit is None:
            piece = self.tokenizer.convert_ids_to_tokens([tok])[0] if tok < self._vocab else None
            hit = piece is not None and self._last in self.tokenizer.convert_tokens_to_string(
                [piece]
            )
            self._maybe[tok] = hit
        return hit

    def tokens_left(self, row: StepRow) -> int:
        """Tokens the row may still generate before a cap ends it (in "step" mode, also the
        pending step's own cap)."""
        left = row.cap - row.cont.new_tokens
        if row.request.mode == "step":
            left = min(left, self.step_format.max_step_tokens - len(row.step_ids))
        return left

    def advance(self, row: StepRow, tok: int, lp: float) -> bool:
        """Append a sampled token (and its logprob) to a row; False once the row is done."""
        cont = row.cont
        cont.new_tokens += 1
        row.step_ids.append(tok)
        row.step_lps.append(lp)
        if tok in self.eos_ids:
            self.close_step(row, truncated=False)
            cont.finished = True
            return False
        ended = False
        if self.maybe_delimiter(tok):
            text = self.tokenizer.decode(row.step_ids, skip_special_tokens=True)
            ended = self.step_format.delimiter in text
        closed = ended and self.close_step(row, truncated=False)
        if not ended and self._marker is not None:
            closed = self.close_at_marker(row)
        if closed:
            row.ended_step = True
            return len(cont.steps) < row.max_steps and cont.new_tokens < row.cap
        if len(row.step_ids) >= self.step_format.max_step_tokens or cont.new_tokens >= row.cap:
            self.cut(row)
            return False
        return True

    def close_at_marker(self, row: StepRow) -> bool:
        """Close the pending step before a line that starts with a step marker (the marker's
        ids stay pending, for the next step); False when there is no such line after some text."""
        text = self.tokenizer.decode(row.step_ids, skip_special_tokens=True)
        at = next((m.start() for m in self._marker.finditer(text) if text[: m.start()].strip()), -1)
        if at < 0:
            return False
        ids = row.step_ids
        split = next(
            i
            for i in range(1, len(ids) + 1)
            if len(self.tokenizer.decode(ids[:i], skip_special_tokens=True)) > at
        )
        rest, rest_lps = ids[split:], row.step_lps[split:]
        row.step_ids, row.step_lps = ids[:split], row.step_lps[:split]
        self.close_step(row, truncated=False)
        row.step_ids, row.step_lps = rest, rest_lps
        return True

    def cut(self, row: StepRow) -> None:
        """End the row at a cap: the pending ids become a truncated step."""
        self.close_step(row, truncated=True)
        row.cont.truncated = True

    def close_step(self, row: StepRow, truncated: bool) -> bool:
        """Turn the row's pending ids into a step; False (and keep them pending) if it is empty."""
        ids = row.step_ids
        cont = row.cont
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        text = text.split(self.step_format.delimiter)[0].strip()
        ends_with_eos = bool(ids) and ids[-1] in self.eos_ids
        if not text and not truncated:
            if not ends_with_eos:
                return False  # a bare delimiter: keep its ids so the prefix stays exact
            if cont.steps:  # a bare end-of-sequence: it belongs to the previous step
                cont.steps[-1].token_ids.extend(ids)
                cont.steps[-1].logprob += _summed(row.step_lps)
                row.step_ids, row.step_lps = [], []
                return True
        cont.steps.append(
            StepPiece(
                text=text, token_ids=list(ids), logprob=_summed(row.step_lps), truncated=truncated
            )
        )
        row.step_ids, row.step_lps = [], []
        return True


class StepRulesPolicy:
    """What HFPolicy and VLLMPolicy share over their StepRules: the step format (setting it
    rebuilds the rules), prompt encoding and decoding. Needs tokenizer, eos_ids, rules and
    max_context set by the policy."""

    tokenizer: Any
    eos_ids: set[int]
    rules: StepRules
    max_context: int

    @property
    def step_format(self) -> StepFormat:
        """The step format the policy's step rules follow."""
        return self.rules.step_format

    @step_format.setter
    def step_format(self, step_format: StepFormat) -> None:
        self.rules = StepRules(self.tokenizer, step_format, self.eos_ids)

    def encode_prompt(self, problem_text: str) -> list[int]:
        """Prompt ids (chat template or plain template, with BOS when the model uses one)."""
        return self.step_format.encode_prompt(problem_text, self.tokenizer, self.max_context)

    def decode(self, ids: list[int]) -> str:
        """The text of token ids (special tokens skipped)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _summed(logprobs: list[float]) -> float:
    """The logprobs' sum, added in order from 0.0 (as a running sum adds them)."""
    total = 0.0
    for lp in logprobs:
        total += lp
    return total

"""PRM inputs from (problem, steps) as a PRMFormat says: token ids and each step's readout position.

One builder serves PRM training and scoring on every backend, so a step's score is read at the
same token everywhere. Every id the format reads is checked against the tokenizer when the
builder is made (a tag that splits, a label that is not one token or does not round-trip, an id
other than the format names: one error naming both), and every readout position is checked in
context when an input is built (the token there is the tag, not a merge of it with its
neighbours), so a PRM never reads a position its family does not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.step_format import PRMFormat, StepFormat, fill_problem
from reasoner.types import ReasonerError

# a chain every format can render, built once per builder to check the readout in context
PROBE = ("What is 2 + 3?", ["First, 2 + 3 = 5.", "The answer is 5."])


def single_token_id(tokenizer: Any, text: str, what: str) -> int:
    """The id of `text` if the tokenizer holds it as exactly one token, else a clear error."""
    tid = tokenizer.convert_tokens_to_ids(text)
    if (
        tid is not None
        and tid != tokenizer.unk_token_id
        and tokenizer.convert_ids_to_tokens(tid) == text
    ):
        return int(tid)
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    raise ReasonerError(
        f"PRM {what} {text!r} is not a single token for this tokenizer (got ids {ids})"
    )


def encoded_token_id(tokenizer: Any, text: str, what: str) -> int:
    """The one id the tokenizer encodes `text` to, as the model cards compute their ids
    (`tokenizer.encode(text)[-1]` of a one-token text); several tokens are a clear error."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ReasonerError(
            f"PRM {what} {text!r} is {len(ids)} tokens for this tokenizer, not one: ids {ids} = "
            f"{tokenizer.convert_ids_to_tokens(ids)}"
        )
    return int(ids[0])


def _check_id(tokenizer: Any, fmt: PRMFormat, what: str, text: str, tid: int, want: int | None):
    """The id round-trips through its token string, and is the one the format names (if any)."""
    token = tokenizer.convert_ids_to_tokens(tid)
    back = tokenizer.convert_tokens_to_ids(token) if token is not None else None
    if back != tid:
        raise ReasonerError(
            f"PRM format {fmt.name!r}: {what} {text!r} is id {tid}, whose token {token!r} is id "
            f"{back}: it does not round-trip"
        )
    if want is not None and want != tid:
        named = tokenizer.convert_ids_to_tokens(want) if want < len(tokenizer) else None
        raise ReasonerError(
            f"PRM format {fmt.name!r}: {what} {text!r} is id {tid} ({token!r}) for this "
            f"tokenizer, the format names id {want} ({named!r}): not this family's tokenizer?"
        )


@dataclass
class PRMInput:
    """One chain's PRM input: ids, each step's readout position, and the cache cut points."""

    ids: list[int]
    readouts: list[int]  # position of each step's readout token
    # ends[k]: the tokens a chain of steps[:k + 1] shares with the chains extending it
    ends: list[int]
    prompt_len: int  # leading tokens that depend on the problem only (0: none known)


class PRMInputBuilder:
    """Builds PRM token ids and readout positions from (problem, steps) by a PRMFormat.

    `tag_id` is the readout token of tag layouts; `pos_id` / `neg_id` the label ids of an
    "lm-labels" readout (None for a head). `build` gives (ids, readout positions).
    """

    def __init__(
        self, tokenizer: Any, step_format: StepFormat | PRMFormat, max_length: int | None = None
    ):
        self.tokenizer = tokenizer
        self.step_format = step_format
        self.format = step_format if isinstance(step_format, PRMFormat) else step_format.prm_format
        self.max_length = max_length
        self._cache: dict[str, list[int]] = {}
        try:
            self._resolve_ids()
        except ReasonerError as err:
            if f"{self.format.name!r}" in str(err):
                raise
            raise ReasonerError(f"PRM format {self.format.name!r}: {err}") from err
        if self.format.tokenize == "whole":
            self.build_chain(*PROBE)  # the readout lands on the tag in context, or an error

    def _resolve_ids(self) -> None:
        """tag_id, pos_id and neg_id from the tokenizer, each checked (the class docstring)."""
        tokenizer, fmt = self.tokenizer, self.format
        pieces = fmt.tokenize == "pieces"
        token_id = single_token_id if pieces else encoded_token_id
        self.tag_id: int | None = None
        self.pos_id: int | None = None
        self.neg_id: int | None = None
        if fmt.layout != "turns":
            self.tag_id = token_id(tokenizer, fmt.step_tag, "step tag")
            _check_id(tokenizer, fmt, "step tag", fmt.step_tag, self.tag_id, fmt.step_tag_id)
        if fmt.readout == "lm-labels":
            self.pos_id = token_id(tokenizer, fmt.positive_token, "positive label token")
            self.neg_id = token_id(tokenizer, fmt.negative_token, "negative label token")
            for what, text, tid, want in (
                ("positive label token", fmt.positive_token, self.pos_id, fmt.positive_id),
                ("negative label token", fmt.negative_token, self.neg_id, fmt.negative_id),
            ):
                _check_id(tokenizer, fmt, what, text, tid, want)
        if not pieces:
            if not getattr(tokenizer, "is_fast", False):
                raise ReasonerError(
                    f"PRM format {fmt.name!r} tokenizes the whole chain and finds its readout "
                    f"tokens by character offsets: that needs a fast (tokenizers) tokenizer"
                )
            if fmt.layout != "text" and getattr(tokenizer, "chat_template", None) is None:
                raise ReasonerError(
                    f"PRM format {fmt.name!r} (layout {fmt.layout!r}) renders the chat "
                    f"template, and this tokenizer has none"
                )

    # ---- building ----------------------------------------------------------------------------
    def build(self, problem: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """PRM input ids of (problem, steps) and the position of each step's readout."""
        chain = self.build_chain(problem, steps)
        return chain.ids, chain.readouts

    def build_chain(self, problem: str, steps: list[str]) -> PRMInput:
        """The chain's PRMInput, cut to its last max_length tokens (the latest steps matter most;
        a readout cut off is an error)."""
        if self.format.tokenize == "pieces":
            chain = self._pieces(problem, steps)
        else:
            chain = self._whole(problem, steps)
        if self.max_length and len(chain.ids) > self.max_length:
            cut = len(chain.ids) - self.max_length
            if any(t < cut for t in chain.readouts):
                raise ReasonerError(
                    f"PRM input of {len(chain.ids)} tokens exceeds max_length {self.max_length}"
                )
            chain = PRMInput(
                chain.ids[cut:],
                [t - cut for t in chain.readouts],
                [max(e - cut, 0) for e in chain.ends],
                0,
            )
        return chain

    def _encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if len(self._cache) < 100_000:
                self._cache[text] = ids
        return ids

    def _pieces(self, problem: str, steps: list[str]) -> PRMInput:
        """Each text piece tokenized on its own, each tag inserted as its id (a tag inside a
        step, e.g. Skywork's "\\n", goes in as the id too, as its card splits the steps)."""
        fmt = self.format
        ids: list[int] = []
        bos = self.tokenizer.bos_token_id
        if fmt.add_bos and bos is not None:
            ids.append(bos)
        ids.extend(self._encode(fill_problem(fmt.prompt, problem)))
        prompt_len = len(ids)
        readouts: list[int] = []
        for i, step in enumerate(steps):
            text = step.strip() if fmt.strip_steps else step
            parts = text.split(fmt.step_tag)
            for j, part in enumerate(parts):
                if j:
                    ids.append(self.tag_id)  # type: ignore[arg-type]
                ids.extend(self._encode(part) if part else [])
            readouts.append(len(ids))
            ids.append(self.tag_id)  # type: ignore[arg-type]
            if i + 1 < len(steps) and fmt.step_joiner:
                ids.extend(self._encode(fmt.step_joiner))
        return PRMInput(ids, readouts, [t + 1 for t in readouts], prompt_len)

    def _whole(self, problem: str, steps: list[str]) -> PRMInput:
        """The rendered chain encoded at once; readouts found from character offsets."""
        text, marks, ends, first = self._render(problem, steps)
        enc = self.tokenizer(
            text, add_special_tokens=self.format.add_bos, return_offsets_mapping=True
        )
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        readouts = [self._locate(text, ids, offsets, start, end) for start, end in marks]
        return PRMInput(
            ids,
            readouts,
            [_tokens_before(offsets, e) for e in ends],
            _tokens_before(offsets, first) if steps else 0,
        )

    def _locate(self, text: str, ids: list[int], offsets: list, start: int, end: int) -> int:
        """The token a readout mark names, checked: for a tag (text[start:end]) the one token
        that covers it; for a turn (start == end) the token that ends right before it."""
        fmt = self.format
        if start == end:  # turns: the token predicting the assistant's reply
            before = [t for t, (a, b) in enumerate(offsets) if b > a and b <= end]
            if not before or offsets[before[-1]][1] != end:
                raise ReasonerError(
                    f"PRM format {fmt.name!r}: no token ends right before the assistant turn "
                    f"{fmt.assistant_turn!r} (the template's text merges with it)"
                )
            return before[-1]
        core = start + len(fmt.step_tag) - len(fmt.step_tag.lstrip())
        hits = [t for t, (a, b) in enumerate(offsets) if a < end <= b]
        t = hits[0] if hits else -1
        if t < 0 or ids[t] != self.tag_id or offsets[t][1] != end or offsets[t][0] > core:
            near = [i for i, (a, b) in enumerate(offsets) if b > start - 2 and a < end + 2]
            raise ReasonerError(
                f"PRM format {fmt.name!r}: the step tag {fmt.step_tag!r} (id {self.tag_id}, "
                f"{self.tokenizer.convert_ids_to_tokens(self.tag_id)!r}) does not come out as one "
                f"token in context: {text[max(start - 8, 0) : end + 8]!r} is tokenized "
                f"{self.tokenizer.convert_ids_to_tokens([ids[i] for i in near])}"
            )
        return t

    # ---- rendering ---------------------------------------------------------------------------
    def _steps(self, steps: list[str]) -> list[str]:
        return [s.strip() for s in steps] if self.format.strip_steps else list(steps)

    def _render(self, problem: str, steps: list[str]) -> tuple[str, list, list[int], int]:
        """The chain's text, each readout mark (start, end) in it, the character each step's
        shared prefix ends at, and where the first step starts."""
        fmt = self.format
        steps = self._steps(steps)
        if fmt.layout == "turns":
            return self._render_turns(problem, steps)
        body, marks = "", []
        for i, step in enumerate(steps):
            body += step
            marks.append((len(body), len(body) + len(fmt.step_tag)))
            body += fmt.step_tag
            if i + 1 < len(steps):
                body += fmt.step_joiner
        if fmt.layout == "text":
            head = fill_problem(fmt.prompt, problem)
            text = head + body
        else:
            messages = self._head_messages(problem)
            head = self._template(messages, generation_prompt=True)
            text = self._template([*messages, {"role": "assistant", "content": body}])
            if not text.startswith(head) or text[len(head) : len(head) + len(body)] != body:
                raise ReasonerError(
                    f"PRM format {fmt.name!r}: the chat template does not place the assistant's "
                    f"text as given after its header, so the step tags cannot be located"
                )
        shift = len(head)
        marks = [(a + shift, b + shift) for a, b in marks]
        return text, marks, [b for _, b in marks], shift

    def _render_turns(self, problem: str, steps: list[str]) -> tuple[str, list, list[int], int]:
        fmt = self.format
        messages = [] if fmt.system_prompt is None else [self._system()]
        marks, ends, prefixes = [], [], []
        for i, step in enumerate(steps):
            content = fill_problem(fmt.prompt, problem) + step if i == 0 else step
            messages.append({"role": "user", "content": content})
            prefixes.append(self._template(messages, generation_prompt=True))
            messages.append({"role": "assistant", "content": fmt.assistant_turn})
            ends.append(len(self._template(messages)))
        if not steps:  # the conversation so far: the question alone
            messages.append({"role": "user", "content": fill_problem(fmt.prompt, problem)})
        text = self._template(messages)
        reply = fmt.assistant_turn.strip()
        for prefix in prefixes:
            at = len(prefix)
            if not text.startswith(prefix) or text[at : at + len(reply)] != reply:
                raise ReasonerError(
                    f"PRM format {fmt.name!r}: the chat template does not render a conversation "
                    f"as the prefix of its continuation, with the assistant turn "
                    f"{fmt.assistant_turn!r} after its header: its readout cannot be located"
                )
            marks.append((at, at))
        first = 0
        if steps:  # where the first user turn's step begins: what a different step changes
            other = [*messages[: len(messages) - 2 * len(steps)], dict(messages[-2 * len(steps)])]
            other[-1]["content"] = fill_problem(fmt.prompt, problem) + "\x00"
            first = len(os.path.commonprefix([text, self._template(other)]))
        return text, marks, ends, first

    def _system(self) -> dict[str, str]:
        return {"role": "system", "content": self.format.system_prompt or ""}

    def _head_messages(self, problem: str) -> list[dict[str, str]]:
        fmt = self.format
        messages = [] if fmt.system_prompt is None else [self._system()]
        messages.append({"role": "user", "content": fill_problem(fmt.prompt, problem)})
        return messages

    def _template(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        if not messages:
            return ""
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )


def prm_input_builder(path: Path, tokenizer: Any, step_format: StepFormat) -> PRMInputBuilder:
    """The builder of a PRM checkpoint's inputs; an id the tokenizer does not hold as the format
    says is an error naming the checkpoint too."""
    try:
        return PRMInputBuilder(tokenizer, step_format)
    except ReasonerError as err:
        raise ReasonerError(f"PRM checkpoint {path}: {err}") from err


def _tokens_before(offsets: list, end: int) -> int:
    """How many leading tokens lie wholly before character `end` (special tokens added by the
    tokenizer, with empty spans at 0, count as before)."""
    n = 0
    for a, b in offsets:
        if b > end or (b == a and a > end):
            break
        n += 1
    return n

"""The labelled PRM data format: one record per sampled solution, with raw rollout outcomes.

Records keep every step's raw rollout rewards, so labels of any kind ("er" at any eta, "soft",
"hard", "orm") are recomputed without new rollouts. They live in JSONL files written one fsynced
line at a time, so a killed labelling job loses at most the record in flight. The Math-Shepherd
text form (steps each followed by a step tag) is supported for export and import.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoner.jsonl import decode_line, repair_tail, split_lines
from reasoner.labels import label_value, resolve_label_kind
from reasoner.types import ReasonerError

__all__ = [
    "MATH_SHEPHERD_TAG",
    "LabeledSolution",
    "append_records",
    "from_math_shepherd",
    "iter_records",
    "read_records",
    "to_math_shepherd",
]

MATH_SHEPHERD_TAG = "ки"  # the step tag of peiyi9979/Math-Shepherd and its PRMs

_REQUIRED = ("problem_id", "problem", "steps", "outcomes", "correct")
_DERIVED = ("label", "values")  # written by to_dict(label=...) for outside readers, never read back


def _field_error(name: str, message: str) -> ReasonerError:
    return ReasonerError(f"field {name!r}: {message}")


def _as_unit_float(value: Any, name: str, where: str) -> float:
    """value as a float in [0, 1], or a ReasonerError naming the field and position."""
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise _field_error(name, f"{where} is {value!r}, not a number in [0, 1]")
    out = float(value)
    if not 0.0 <= out <= 1.0:  # also rejects NaN
        raise _field_error(name, f"{where} is {out!r}, outside [0, 1]")
    return out


def _check_unicode(name: str, text: str) -> None:
    """A ReasonerError naming the field when `text` holds a lone surrogate (from JSON "\\ud800"
    or undecodable bytes): it could not be written back as UTF-8 nor tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _field_error(
            name, f"is not valid Unicode text (a lone surrogate at character {exc.start})"
        ) from None


def _is_list_like(value: Any) -> bool:
    """A list, tuple or other iterable sequence (numpy arrays included), not a string or dict."""
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict))


@dataclass
class LabeledSolution:
    """One sampled solution with the raw rollout rewards of each of its step prefixes.

    outcomes[l] holds the rewards of the rollouts continued after step l; the last step's list
    is just [the solution's own 0/1 correctness] (it is finished, so no rollouts). first_error
    is the 0-based index of the first wrong step when known exactly (-1: every step
    is right), else None.
    """

    problem_id: str
    problem: str
    gold: str | None
    steps: list[str]
    outcomes: list[list[float]]
    correct: bool
    first_error: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.problem_id, (int, float)) and not isinstance(self.problem_id, bool):
            self.problem_id = str(self.problem_id)
        if not isinstance(self.problem_id, str):
            raise _field_error("problem_id", f"must be a string, got {self.problem_id!r}")
        if not isinstance(self.problem, str) or not self.problem.strip():
            raise _field_error("problem", f"must be a non-empty string, got {self.problem!r}")
        if self.gold is not None and not isinstance(self.gold, str):
            if isinstance(self.gold, bool) or not isinstance(self.gold, (int, float)):
                raise _field_error("gold", f"must be a string or null, got {self.gold!r}")
            self.gold = str(self.gold)
        if not isinstance(self.steps, (list, tuple)) or not self.steps:
            raise _field_error("steps", f"must be a non-empty list of strings, got {self.steps!r}")
        for i, step in enumerate(self.steps):
            if not isinstance(step, str):
                raise _field_error("steps", f"step {i} is {step!r}, not a string")
        self.steps = list(self.steps)
        for name, text in [("problem_id", self.problem_id), ("problem", self.problem)]:
            _check_unicode(name, text)
        if self.gold is not None:
            _check_unicode("gold", self.gold)
        for step in self.steps:
            _check_unicode("steps", step)
        self.correct = self._check_correct(self.correct)
        self.outcomes = self._check_outcomes(self.outcomes)
        if self.first_error is not None:
            if isinstance(self.first_error, bool) or not isinstance(self.first_error, int):
                raise _field_error(
                    "first_error", f"must be an integer or null, got {self.first_error!r}"
                )
            if not -1 <= self.first_error < len(self.steps):
                raise _field_error(
                    "first_error",
                    f"{self.first_error} is not a step index (0..{len(self.steps) - 1}) "
                    "or -1 (every step right)",
                )
        if not isinstance(self.metadata, dict):
            raise _field_error("metadata", f"must be an object, got {self.metadata!r}")

    @staticmethod
    def _check_correct(value: Any) -> bool:
        try:
            ok = not isinstance(value, (str, bytes)) and value in (0, 1)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise _field_error("correct", f"must be true or false, got {value!r}")
        return bool(value)

    def _check_outcomes(self, outcomes: Any) -> list[list[float]]:
        if not _is_list_like(outcomes):
            raise _field_error("outcomes", f"must be a list of lists of rewards, got {outcomes!r}")
        outcomes = list(outcomes)
        if len(outcomes) != len(self.steps):
            raise _field_error(
                "outcomes", f"has {len(outcomes)} entries but there are {len(self.steps)} steps"
            )
        checked = []
        for i, rewards in enumerate(outcomes):
            items = list(rewards) if _is_list_like(rewards) else []
            if not items:
                raise _field_error(
                    "outcomes", f"step {i} must have a non-empty list of rewards, got {rewards!r}"
                )
            checked.append(
                [_as_unit_float(r, "outcomes", f"step {i} reward {j}") for j, r in enumerate(items)]
            )
        if checked[-1] != [float(self.correct)]:
            raise _field_error(
                "outcomes",
                f"the last step must hold just the solution's own correctness "
                f"[{float(self.correct)}], got {checked[-1]!r}",
            )
        return checked

    def values(self, kind: str, eta: float | None = None) -> list[float]:
        """Per-step labels of a kind: "er" (with eta), "soft", "hard", "orm", "exact", or "er-2".

        "orm" gives every step the solution's final correctness; the others are computed from
        each step's rollout rewards (the last step is the solution's own correctness).
        """
        try:
            name, e = resolve_label_kind(kind, eta)
            if name == "orm":
                return [float(self.correct)] * len(self.steps)
            if name == "exact":
                return self._exact_values()
            return [label_value(rewards, name, e) for rewards in self.outcomes]
        except ReasonerError:
            raise
        except ValueError as exc:
            raise ReasonerError(str(exc)) from None

    def _exact_values(self) -> list[float]:
        """Oracle step truth: 1 before the first wrong step, 0 from it on (needs first_error)."""
        if self.first_error is None:
            raise _field_error(
                "first_error",
                f"label kind 'exact' needs each record's first wrong step, which problem "
                f"{self.problem_id!r} lacks (only synthetic suites with a step checker have it)",
            )
        stop = len(self.steps) if self.first_error == -1 else self.first_error
        return [1.0 if i < stop else 0.0 for i in range(len(self.steps))]

    def to_dict(self, label: str | None = None) -> dict[str, Any]:
        """A JSON-ready dict. With a label spec (e.g. "er-2") it also carries "label" and the
        per-step "values", for readers outside this package (from_dict recomputes, ignores them)."""
        data = {
            "problem_id": self.problem_id,
            "problem": self.problem,
            "gold": self.gold,
            "steps": list(self.steps),
            "outcomes": [list(r) for r in self.outcomes],
            "correct": self.correct,
            "first_error": self.first_error,
            "metadata": dict(self.metadata),
        }
        if label is not None:
            data["label"] = label
            data["values"] = self.values(label)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabeledSolution:
        """Build and validate a record; ReasonerError naming the missing or bad field."""
        if not isinstance(data, dict):
            raise ReasonerError(f"a record must be a JSON object, got {type(data).__name__}")
        for name in _REQUIRED:
            if name not in data:
                raise _field_error(name, "missing")
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known and k not in _DERIVED}
        fields.setdefault("gold", None)  # a record may not know its gold answer
        return cls(**fields)


def append_records(
    path: str | os.PathLike[str], records: Iterable[LabeledSolution], label: str | None = None
) -> int:
    """Append records to a JSONL file, one line each, flushed and fsynced after every record.

    A killed job therefore loses at most the record in flight; a truncated line it left behind
    is removed on the next append. label (a spec like "er-2") also stores derived values.
    Returns the number of records written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        repair_tail(target)
    written = 0
    with open(target, "ab") as f:
        for record in records:
            if not isinstance(record, LabeledSolution):
                raise ReasonerError(
                    f"{target}: can only append LabeledSolution records, got {type(record).__name__}"
                )
            try:
                line = json.dumps(record.to_dict(label=label), ensure_ascii=False, allow_nan=False)
                data = (line + "\n").encode("utf-8")  # a lone surrogate fails here, not mid-write
            except (TypeError, ValueError) as exc:
                raise ReasonerError(
                    f"{target}: record {record.problem_id!r} is not JSON-serializable "
                    f"(check its metadata): {exc}"
                ) from None
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            written += 1
    return written


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, LabeledSolution]]:
    """(byte offset of its line, record) of each record of a JSONL file, in file order.

    A truncated last line (a kill mid-write) is skipped with a RuntimeWarning; any other
    malformed line raises ReasonerError naming file, line and field. A leading byte-order mark
    is accepted."""
    source = Path(path)
    if not source.is_file():
        raise ReasonerError(f"{source}: no such file")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ReasonerError(f"cannot read {source}: {exc}") from None
    lines = list(split_lines(data))
    for i, (number, offset, raw) in enumerate(lines):
        where = f"{source}:{number}"
        try:
            parsed = decode_line(raw)
        except ValueError as exc:
            if i == len(lines) - 1:
                warnings.warn(
                    f"{where}: skipping a truncated last line (an interrupted write?): {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            raise ReasonerError(f"{where}: not valid JSON: {exc}") from None
        try:
            yield offset, LabeledSolution.from_dict(parsed)
        except ReasonerError as exc:
            raise ReasonerError(f"{where}: {exc}") from None


def read_records(path: str | os.PathLike[str]) -> list[LabeledSolution]:
    """Read a JSONL file of records. A truncated last line (a kill mid-write) is skipped with a
    RuntimeWarning; any other malformed line raises ReasonerError naming file, line and field."""
    return [record for _, record in iter_records(path)]


def _check_tag(tag: str) -> None:
    if not isinstance(tag, str) or not tag.strip():
        raise ReasonerError(f"the step tag must be a non-empty string, got {tag!r}")


def to_math_shepherd(
    record: LabeledSolution,
    values: Sequence[float] | str,
    tag: str = MATH_SHEPHERD_TAG,
    *,
    threshold: float = 0.5,
    task: str | None = None,
) -> dict[str, Any]:
    """Export a record in the Math-Shepherd text form, with one value per step tag.

    "input" is the problem, a space, then the steps joined by newlines, each followed by " " +
    tag (as in peiyi9979/Math-Shepherd); "label" is "input" with each tag replaced by "+" (value
    >= threshold) or "-"; "values" keeps the exact values and "problem" the problem text, so the
    import is exact. values is a list aligned with the steps or a label spec such as "er-2".
    """
    _check_tag(tag)
    if isinstance(values, str):
        values = record.values(values)
    vals = [_as_unit_float(v, "values", f"value {i}") for i, v in enumerate(values)]
    if len(vals) != len(record.steps):
        raise ReasonerError(f"{len(vals)} values for {len(record.steps)} steps")
    if tag in record.problem:
        raise ReasonerError(f"the problem text contains the step tag {tag!r}")
    for i, step in enumerate(record.steps):
        if tag in step:
            raise ReasonerError(f"step {i} contains the step tag {tag!r}")
    body = "\n".join(f"{step} {tag}" for step in record.steps)
    text = f"{record.problem} {body}"
    pieces = text.split(tag)
    if len(pieces) != len(vals) + 1:  # a tag formed across a boundary (tags with spaces)
        raise ReasonerError(f"step tag {tag!r} is ambiguous in this text: pick another tag")
    label = pieces[0] + "".join(
        ("+" if v >= threshold else "-") + piece for v, piece in zip(vals, pieces[1:], strict=True)
    )
    row: dict[str, Any] = {"input": text, "label": label, "values": vals, "problem": record.problem}
    if task is not None:
        row["task"] = task
    return row


def _parse_value(value: Any, i: int) -> float:
    """One imported value: "+" -> 1.0, "-" -> 0.0, or a number (or numeric string) in [0, 1]."""
    if isinstance(value, str):
        if value.strip() in ("+", "-"):
            return 1.0 if value.strip() == "+" else 0.0
        try:
            value = float(value)
        except ValueError:
            raise _field_error(
                "values", f"value {i} is {value!r}: expected +, - or a number"
            ) from None
    return _as_unit_float(value, "values", f"value {i}")


def _row_values(row: dict[str, Any], text: str, pieces: list[str], tag: str) -> list[float]:
    """The per-tag values of a row, from "values" (or "value") if present, else from "label"."""
    n = len(pieces) - 1
    for name in ("values", "value"):
        if name in row:
            raw = row[name]
            if not isinstance(raw, (list, tuple)):
                raise _field_error(name, f"must be a list, got {type(raw).__name__}")
            if len(raw) != n:
                raise _field_error(name, f"has {len(raw)} values but 'input' has {n} step tags")
            return [_parse_value(v, i) for i, v in enumerate(raw)]
    if "label" not in row:
        raise ReasonerError("the row has neither 'values' nor 'label'")
    label = row["label"]
    if isinstance(label, (list, tuple)):
        if len(label) != n:
            raise _field_error("label", f"has {len(label)} labels but 'input' has {n} step tags")
        return [_parse_value(v, i) for i, v in enumerate(label)]
    if not isinstance(label, str):
        raise _field_error("label", f"must be a string or a list, got {type(label).__name__}")
    if len(label) != len(text) - n * (len(tag) - 1):
        raise _field_error(
            "label",
            f"does not line up with 'input': expected {n} '+'/'-' marks in place of the "
            f"{n} step tags (lengths {len(label)} vs {len(text) - n * (len(tag) - 1)})",
        )
    out, pos = [], 0
    for i, piece in enumerate(pieces[:-1]):
        pos += len(piece)
        mark = label[pos]
        if mark not in "+-":
            raise _field_error("label", f"has {mark!r} where step tag {i} is, expected + or -")
        out.append(1.0 if mark == "+" else 0.0)
        pos += 1
    return out


def from_math_shepherd(
    row: dict[str, Any], tag: str = MATH_SHEPHERD_TAG
) -> tuple[str, list[str], list[float]]:
    """Parse a Math-Shepherd row into (problem, steps, values), one value per step tag.

    Values come from "values" (floats or "+"/"-") when present, else from "label" ("+" -> 1.0,
    "-" -> 0.0). Rows we exported carry "problem" and parse exactly; rows of the original
    dataset separate the problem from the first step at its "Step 1:" marker.
    """
    _check_tag(tag)
    if not isinstance(row, dict):
        raise ReasonerError(f"a Math-Shepherd row must be an object, got {type(row).__name__}")
    text = row.get("input")
    if not isinstance(text, str):
        raise _field_error("input", "missing" if text is None else "must be a string")
    pieces = text.split(tag)
    n = len(pieces) - 1
    if n == 0:
        raise _field_error("input", f"has no step tag {tag!r}")
    if pieces[-1].strip():
        raise _field_error("input", f"has text after the last step tag: {pieces[-1][:60]!r}")
    values = _row_values(row, text, pieces, tag)
    first = pieces[0]
    problem = row.get("problem")
    if problem is not None:  # our own export: undo it exactly
        if not isinstance(problem, str) or not first.startswith(problem + " "):
            raise _field_error("problem", "'input' does not start with it followed by a space")
        raw = [first[len(problem) + 1 :]] + [
            p[1:] if p.startswith("\n") else p for p in pieces[1:-1]
        ]
        steps = [s[:-1] if s.endswith(" ") else s for s in raw]
        return problem, steps, values
    cut = max(first.rfind("Step 1:"), first.rfind("step 1:"))
    if cut < 0:
        raise _field_error(
            "input",
            "cannot tell the problem from the first step (no 'Step 1:' marker and no "
            "'problem' field)",
        )
    problem = first[:cut].strip()
    if not problem:
        raise _field_error("input", "the problem text before 'Step 1:' is empty")
    steps = [first[cut:].strip()] + [p.strip() for p in pieces[1:-1]]
    return problem, steps, values

"""Tests of the labelled-data format: validation, per-step values, JSONL I/O that survives a kill
mid-write, and the Math-Shepherd text form (round trips, real rows, mismatches)."""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.labels import binary_er_value, er_value
from reasoner.training.records import (
    MATH_SHEPHERD_TAG,
    LabeledSolution,
    append_records,
    from_math_shepherd,
    read_records,
    to_math_shepherd,
)
from reasoner.types import ReasonerError

TAGS = [MATH_SHEPHERD_TAG, "<|step|>"]


def make(
    steps: list[str] | None = None,
    outcomes: list[list[float]] | None = None,
    correct: bool = True,
    **kw,
) -> LabeledSolution:
    steps = ["2 + 2 = 4", "The answer is 4"] if steps is None else steps
    outcomes = [[1.0, 1.0, 0.0, 1.0], [float(correct)]] if outcomes is None else outcomes
    kw.setdefault("problem_id", "p1")
    kw.setdefault("problem", "What is 2 + 2?")
    kw.setdefault("gold", "4")
    return LabeledSolution(steps=steps, outcomes=outcomes, correct=correct, **kw)


@st.composite
def records(draw: st.DrawFn, tag: str = MATH_SHEPHERD_TAG) -> LabeledSolution:
    """Arbitrary valid records: any unicode text (minus the tag), graded or binary rewards."""
    n = draw(st.integers(min_value=1, max_value=6))
    steps = draw(
        st.lists(st.text(max_size=30).filter(lambda s: tag not in s), min_size=n, max_size=n)
    )
    correct = draw(st.booleans())
    reward = st.sampled_from([0.0, 1.0]) | st.floats(min_value=0.0, max_value=1.0)
    outcomes = [draw(st.lists(reward, min_size=1, max_size=8)) for _ in range(n - 1)]
    json_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    return LabeledSolution(
        problem_id=draw(st.text(max_size=10)),
        problem=draw(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and tag not in s)),
        gold=draw(st.none() | st.text(max_size=10)),
        steps=steps,
        outcomes=[*outcomes, [float(correct)]],
        correct=correct,
        first_error=draw(st.none() | st.integers(min_value=-1, max_value=n - 1)),
        metadata=draw(st.dictionaries(st.text(max_size=8), json_scalar, max_size=3)),
    )


# ---------------------------------------------------------------------------- the record


def test_values_of_each_kind() -> None:
    record = make()
    assert record.values("soft") == [0.75, 1.0]
    assert record.values("hard") == [1.0, 1.0]
    assert record.values("orm") == [1.0, 1.0]
    assert record.values("er", 2.0) == pytest.approx([binary_er_value(3, 4, 2.0), 1.0], rel=1e-15)
    assert record.values("er-2") == record.values("er", 2) == record.values("er:2.0", 2.0)
    assert record.values("er", 0.5) == [er_value([1, 1, 0, 1], 0.5), 1.0]
    wrong = make(outcomes=[[0.0, 1.0], [0.0]], correct=False)
    assert wrong.values("orm") == [0.0, 0.0]
    assert wrong.values("hard") == [1.0, 0.0]  # the last step is the solution's own correctness
    assert wrong.values("er-1000") == [pytest.approx(1 - math.log(2) / 1000), 0.0]


def test_exact_values_follow_the_first_wrong_step_not_the_rollouts() -> None:
    steps = ["a", "b", "c"]
    outcomes = [[1.0, 1.0], [1.0, 0.0], [0.0]]
    record = make(steps=steps, outcomes=outcomes, correct=False, first_error=1)
    assert record.values("exact") == [1.0, 0.0, 0.0]
    assert make(steps=steps, outcomes=outcomes, correct=False, first_error=-1).values("exact") == [
        1.0,
        1.0,
        1.0,
    ]
    with pytest.raises(ReasonerError, match="first_error.*synthetic"):
        make(steps=steps, outcomes=outcomes, correct=False, first_error=None).values("exact")


@pytest.mark.parametrize(
    ("kind", "eta", "match"),
    [("er", None, "needs eta"), ("hard", 2.0, "only applies"), ("er-2", 3.0, "says eta"),
     ("mse", None, "valid forms"), ("er", -1.0, ">= 0")],
)  # fmt: skip
def test_values_bad_kind(kind: str, eta, match: str) -> None:
    with pytest.raises(ReasonerError, match=match):
        make().values(kind, eta)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"outcomes": [[1.0]]}, "'outcomes': has 1 entries but there are 2 steps"),
        ({"outcomes": [[1.0], [0.0]]}, r"'outcomes': the last step .* \[1.0\]"),
        ({"outcomes": [[1.0], [1.0, 1.0]]}, "'outcomes': the last step"),
        ({"outcomes": [[], [1.0]]}, "'outcomes': step 0 must have a non-empty"),
        ({"outcomes": [[1.5], [1.0]]}, r"'outcomes': step 0 reward 0 is 1.5, outside \[0, 1\]"),
        ({"outcomes": [[float("nan")], [1.0]]}, "'outcomes'"),
        ({"outcomes": [["1"], [1.0]]}, "'outcomes': step 0 reward 0 is '1'"),
        ({"steps": [], "outcomes": []}, "'steps'"),
        ({"steps": ["a", 3]}, "'steps': step 1"),
        ({"problem": "  "}, "'problem'"),
        ({"first_error": 2}, "'first_error'"),
        ({"first_error": -2}, "'first_error'"),
        ({"correct": "yes"}, "'correct'"),
        ({"metadata": []}, "'metadata'"),
    ],
)
def test_validation_names_the_field(changes: dict, match: str) -> None:
    data = make().to_dict()
    data.update(changes)
    with pytest.raises(ReasonerError, match=match):
        LabeledSolution.from_dict(data)


def test_from_dict_missing_field_and_derived_fields() -> None:
    data = make().to_dict()
    del data["outcomes"]
    with pytest.raises(ReasonerError, match="'outcomes': missing"):
        LabeledSolution.from_dict(data)
    with_values = make().to_dict(label="er-2")
    assert with_values["label"] == "er-2"
    assert with_values["values"] == make().values("er-2")
    with_values["values"] = [0.0, 0.0]  # derived data is recomputed, never trusted
    assert LabeledSolution.from_dict(with_values) == make()


@settings(max_examples=30, deadline=None)
@given(records())
def test_dict_round_trip_through_json(record: LabeledSolution) -> None:
    line = json.dumps(record.to_dict(), ensure_ascii=False, allow_nan=False)
    assert "\n" not in line
    assert LabeledSolution.from_dict(json.loads(line)) == record


# ---------------------------------------------------------------------------- JSONL files


@settings(max_examples=15, deadline=None)
@given(st.lists(records(), min_size=0, max_size=4), st.lists(records(), min_size=1, max_size=3))
def test_jsonl_round_trip(first: list[LabeledSolution], second: list[LabeledSolution]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub" / "labels.jsonl"
        assert append_records(path, first) == len(first)
        assert append_records(path, second, label="soft") == len(second)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert read_records(path) == first + second
        assert path.read_bytes().count(b"\n") == len(first) + len(second)


LAST_LINE = (
    json.dumps(make(problem_id="p3", problem="ки?").to_dict(), ensure_ascii=False) + "\n"
).encode()
INSIDE_UTF8 = LAST_LINE.index("ки".encode()) + 1  # a cut in the middle of a 2-byte character


def write_with_partial_tail(path: Path, cut: int) -> None:
    """Three complete records, then the first `cut` bytes of a fourth: a kill mid-write."""
    append_records(path, [make(problem_id=f"p{i}") for i in range(3)])
    with open(path, "ab") as f:
        f.write(LAST_LINE[:cut])


@pytest.mark.parametrize("cut", [1, 2, INSIDE_UTF8, INSIDE_UTF8 + 2, len(LAST_LINE) // 2, -3, -2])
def test_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "labels.jsonl"
    write_with_partial_tail(path, cut)
    assert 0 < cut % len(LAST_LINE) < len(LAST_LINE) - 1  # truly partial
    with pytest.warns(RuntimeWarning, match=r"labels.jsonl:4: skipping a truncated last line"):
        got = read_records(path)
    assert [r.problem_id for r in got] == ["p0", "p1", "p2"]
    # resuming: the fragment is cut before appending, so the next record stays readable
    with pytest.warns(RuntimeWarning, match="removing a truncated last line"):
        append_records(path, [make(problem_id="p4")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.problem_id for r in read_records(path)] == ["p0", "p1", "p2", "p4"]


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    write_with_partial_tail(path, -1)  # everything but the newline
    assert not path.read_bytes().endswith(b"\n")
    assert [r.problem_id for r in read_records(path)] == ["p0", "p1", "p2", "p3"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        append_records(path, [make(problem_id="p4")])
        assert [r.problem_id for r in read_records(path)] == ["p0", "p1", "p2", "p3", "p4"]


def test_malformed_line_elsewhere_raises_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    append_records(path, [make(problem_id="p0")])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"problem_id": "p1", "problem": \n')
    append_records(path, [make(problem_id="p2")])
    with pytest.raises(ReasonerError, match=r"labels.jsonl:2: not valid JSON"):
        read_records(path)


def test_missing_or_bad_field_raises_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    good = json.dumps(make().to_dict())
    missing = make().to_dict()
    del missing["correct"]
    bad = make().to_dict()
    bad["outcomes"][0][1] = 2.0
    path.write_text(f"{good}\n\n{json.dumps(missing)}\n{good}\n", encoding="utf-8")
    with pytest.raises(ReasonerError, match=r"labels.jsonl:3: field 'correct': missing"):
        read_records(path)
    # a bad field on the LAST line is not a truncation: it raises too
    path.write_text(f"{good}\n{json.dumps(bad)}\n", encoding="utf-8")
    with pytest.raises(ReasonerError, match=r"labels.jsonl:2: field 'outcomes': step 0 reward 1"):
        read_records(path)
    path.write_text(f"{good}\n[1, 2]\n{good}\n", encoding="utf-8")
    with pytest.raises(ReasonerError, match=r"labels.jsonl:2: a record must be a JSON object"):
        read_records(path)


def test_io_errors(tmp_path: Path) -> None:
    with pytest.raises(ReasonerError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(ReasonerError, match="not JSON-serializable"):
        append_records(tmp_path / "x.jsonl", [make(metadata={"x": object()})])
    with pytest.raises(ReasonerError, match="not JSON-serializable"):
        append_records(tmp_path / "y.jsonl", [make(metadata={"x": float("nan")})])
    with pytest.raises(ReasonerError, match="LabeledSolution"):
        append_records(tmp_path / "z.jsonl", [make().to_dict()])
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert read_records(tmp_path / "empty.jsonl") == []


def test_byte_order_mark_and_lone_surrogates(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    line = json.dumps(make().to_dict(), ensure_ascii=False)
    path.write_bytes(b"\xef\xbb\xbf" + f"{line}\n{line}\n".encode())  # an editor's BOM
    assert [r.problem_id for r in read_records(path)] == ["p1", "p1"]
    for field in ("problem", "gold", "problem_id"):
        with pytest.raises(ReasonerError, match=rf"field '{field}': is not valid Unicode text"):
            make(**{field: "2 + \ud800"})
    with pytest.raises(ReasonerError, match="field 'steps': is not valid Unicode text"):
        make(steps=["ok", "\udcff"])
    data = make().to_dict()
    path.write_text(json.dumps({**data, "problem": "x \ud800"}) + "\n")  # JSON "\ud800"
    with pytest.raises(ReasonerError, match=r"labels.jsonl:1: field 'problem': is not valid"):
        read_records(path)
    with pytest.raises(ReasonerError, match="not JSON-serializable"):
        append_records(tmp_path / "s.jsonl", [make(metadata={"note": "\ud800"})])
    assert not (tmp_path / "s.jsonl").read_bytes()  # nothing half-written


# ---------------------------------------------------------------------------- Math-Shepherd


def test_math_shepherd_export_layout() -> None:
    row = to_math_shepherd(make(), [0.75, 1.0], task="GSM8K")
    assert row["input"] == "What is 2 + 2? 2 + 2 = 4 ки\nThe answer is 4 ки"
    assert row["label"] == "What is 2 + 2? 2 + 2 = 4 +\nThe answer is 4 +"
    assert row["values"] == [0.75, 1.0]
    assert row["task"] == "GSM8K"
    low = to_math_shepherd(make(), [0.25, 1.0])
    assert low["label"] == "What is 2 + 2? 2 + 2 = 4 -\nThe answer is 4 +"
    assert to_math_shepherd(make(), "er-2")["values"] == make().values("er-2")


@pytest.mark.parametrize("tag", TAGS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_math_shepherd_round_trip(tag: str, data: st.DataObject) -> None:
    record = data.draw(records(tag))
    values = data.draw(
        st.lists(st.floats(0.0, 1.0), min_size=len(record.steps), max_size=len(record.steps))
    )
    row = json.loads(json.dumps(to_math_shepherd(record, values, tag), ensure_ascii=False))
    assert row["input"].count(tag) == len(record.steps)
    assert from_math_shepherd(row, tag) == (record.problem, record.steps, values)
    # from the +/- label alone: the values thresholded at 0.5
    del row["values"]
    signs = [1.0 if v >= 0.5 else 0.0 for v in values]
    assert from_math_shepherd(row, tag) == (record.problem, record.steps, signs)


words = st.text(alphabet="abcxyz0123456789 .,$=+-*/()?", min_size=1, max_size=25).map(str.strip)


@settings(max_examples=60, deadline=None)
@given(words.filter(bool), st.lists(words, min_size=1, max_size=6), st.data())
def test_math_shepherd_original_rows_without_problem_field(problem, bodies, data) -> None:
    # the original dataset numbers its steps and has no "problem" field
    steps = [f"Step {i + 1}: {body}".strip() for i, body in enumerate(bodies)]
    signs = data.draw(st.lists(st.sampled_from("+-"), min_size=len(steps), max_size=len(steps)))
    text = problem + " " + "\n".join(f"{s} ки" for s in steps)
    label = problem + " " + "\n".join(f"{s} {sign}" for s, sign in zip(steps, signs, strict=True))
    got = from_math_shepherd({"input": text, "label": label, "task": "GSM8K"})
    assert got == (problem, steps, [1.0 if s == "+" else 0.0 for s in signs])


def test_math_shepherd_real_row() -> None:
    # the layout of peiyi9979/Math-Shepherd (its README example, shortened)
    text = (
        "Janet\u2019s ducks lay 16 eggs per day. How much in dollars does she make every day at "
        "the farmers' market? Step 1: Janet's ducks lay 16 eggs per day. ки\nStep 2: She eats "
        "three for breakfast every morning, so she has 16 - 3 = 13 eggs left. ки\nStep 3: So she "
        "makes 13 * $2 = $26 every day at the farmers' market. The answer is: 26 ки"
    )
    row = {"input": text, "label": text.replace("ки", "+", 2).replace("ки", "-"), "task": "GSM8K"}
    problem, steps, values = from_math_shepherd(row)
    assert problem.endswith("farmers' market?") and problem.startswith("Janet")
    assert steps[0] == "Step 1: Janet's ducks lay 16 eggs per day."
    assert steps[2].endswith("The answer is: 26")
    assert values == [1.0, 1.0, 0.0]
    # a "value" column of +/- strings or numbers (as in derived copies of the dataset) is read too
    assert from_math_shepherd({"input": text, "value": ["+", "-", "0.25"]})[2] == [1.0, 0.0, 0.25]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"input": "Q? Step 1: a ки\nStep 2: b ки", "values": [1.0]}, "'values': has 1 values but 'input' has 2"),
        ({"input": "Q? Step 1: a ки", "values": [1.0, 0.0]}, "has 2 values but 'input' has 1"),
        ({"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b ки"}, "'label'"),
        ({"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b"}, "'label': does not line up"),
        ({"input": "Q? Step 1: a ки", "label": "Q? Step 1: a x"}, "'label': has 'x'"),
        ({"input": "Q? Step 1: a ки", "label": ["+", "-"]}, "'label': has 2 labels"),
        ({"input": "Q? Step 1: a", "label": "Q? Step 1: a"}, "no step tag"),
        ({"input": "Q? Step 1: a ки trailing", "values": [1.0]}, "text after the last step tag"),
        ({"input": "Q? a ки", "values": [1.0]}, "cannot tell the problem"),
        ({"input": "Q? Step 1: a ки", "values": [1.5]}, r"outside \[0, 1\]"),
        ({"input": "Q? Step 1: a ки", "values": ["?"]}, "expected \\+, - or a number"),
        ({"input": "Q? Step 1: a ки"}, "neither 'values' nor 'label'"),
        ({"label": "x"}, "'input': missing"),
        ({"input": "Q? a ки", "values": [1.0], "problem": "Z"}, "'problem'"),
    ],
)  # fmt: skip
def test_math_shepherd_mismatches_raise(row: dict, match: str) -> None:
    with pytest.raises(ReasonerError, match=match):
        from_math_shepherd(row)


def test_math_shepherd_export_errors() -> None:
    with pytest.raises(ReasonerError, match="3 values for 2 steps"):
        to_math_shepherd(make(), [1.0, 1.0, 1.0])
    with pytest.raises(ReasonerError, match="step 1 contains the step tag"):
        to_math_shepherd(make(steps=["a", "b ки"]), [1.0, 1.0])
    with pytest.raises(ReasonerError, match="problem text contains"):
        to_math_shepherd(make(problem="Q ки"), [1.0, 1.0])
    with pytest.raises(ReasonerError, match="ambiguous"):
        # "\n" + "S" (the step joiner and the next step) forms the tag "\nS" once more
        to_math_shepherd(make(steps=["a", "S"]), [1.0, 1.0], tag="\nS")
    with pytest.raises(ReasonerError, match="non-empty"):
        to_math_shepherd(make(), [1.0, 1.0], tag="")

"""Fuzzing every file loader, the grader and answer extraction: random bytes (and random JSON /
TOML built from the real keys, to get past the parser) give a result or a ReasonerError, never
another exception, and each call is bounded in time (hypothesis `deadline`)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.bench.replay import SampleRow
from benchmarks.bench.resume import read_results, read_run_json, read_samples
from benchmarks.bench.rows import ROW_KEYS
from benchmarks.config import BenchConfig
from reasoner.datasets import load_dataset, load_processbench
from reasoner.grading import extract_answer, grade
from reasoner.jsonl import read_jsonl, repair_tail
from reasoner.step_format import get_step_format
from reasoner.training.records import read_records
from reasoner.types import ReasonerError

FAST = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BOM = b"\xef\xbb\xbf"
pytestmark = pytest.mark.filterwarnings("ignore:.*truncated last line:RuntimeWarning")

# JSON values, with the strings a broken file holds: lone surrogates come back from "\ud800"
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "\n", "#### 3", "\\boxed{2}", "-1", "1e309"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def objects_with(keys: list[str]) -> st.SearchStrategy[dict]:
    """JSON objects whose keys are mostly the real ones, with values of any type."""
    return st.dictionaries(
        st.sampled_from(keys) | st.text(max_size=6), json_values, max_size=len(keys) + 2
    )


def jsonl_bytes(keys: list[str]) -> st.SearchStrategy[bytes]:
    """A JSONL file: random bytes, or lines of objects with the real keys, maybe torn or BOMed."""
    lines = st.lists(objects_with(keys).map(json.dumps), max_size=5).map("\n".join)
    structured = st.tuples(lines, st.booleans(), st.integers(0, 40), st.booleans()).map(
        lambda t: (BOM if t[1] else b"") + t[0].encode()[: len(t[0]) - t[2] if t[3] else None]
    )
    return st.binary(max_size=300) | structured


def fine(call, *args, **kwargs):
    """The call's result, or None when it raised a ReasonerError (anything else propagates)."""
    try:
        return call(*args, **kwargs)
    except ReasonerError:
        return None


@pytest.fixture
def path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "file"


RECORD_KEYS = ["problem_id", "problem", "gold", "steps", "outcomes", "correct", "first_error"]
RECORD_KEYS += ["metadata", "label", "values"]


@FAST
@example(
    b'{"problem_id": "p", "problem": "x \\ud800", "steps": ["a"], "outcomes": [[1.0]], '
    b'"correct": true}\n'
)
@example(
    BOM + b'{"problem_id": 1, "problem": "q", "steps": ["a", "b"], "outcomes": [[0.5], [1]], '
    b'"correct": 1}\n'
)
@given(jsonl_bytes(RECORD_KEYS))
def test_label_records(path, data):
    path.write_bytes(data)
    records = fine(read_records, path)
    assert records is None or isinstance(records, list)


@FAST
@given(jsonl_bytes(["a", "b"]))
def test_jsonl_read_and_repair(path, data):
    path.write_bytes(data)
    rows = fine(read_jsonl, path)
    assert rows is None or all(isinstance(r, dict) for r in rows)
    repair_tail(path)
    assert path.read_bytes() == b"" or path.read_bytes().endswith(b"\n")


@FAST
@given(jsonl_bytes(list(ROW_KEYS) + ["tree", "subsampled_from"]))
def test_bench_result_rows(path, data):
    path.write_bytes(data)
    rows = fine(read_results, path)
    if rows:  # a row that loads is a row a report can use
        assert all(isinstance(r.cell.key(), str) for r in rows)


SAMPLE_KEYS = list(SampleRow.__dataclass_fields__)


@FAST
@given(jsonl_bytes(SAMPLE_KEYS) | objects_with(SAMPLE_KEYS).map(lambda d: json.dumps(d).encode()))
def test_bench_sample_rows(path, data):
    path.write_bytes(data)
    fine(read_samples, path)


@FAST
@given(
    st.binary(max_size=200)
    | objects_with(["config", "history", "data_files", "models", "started"]).map(
        lambda d: json.dumps(d).encode()
    )
)
def test_bench_run_json(path, data):
    path.write_bytes(data)
    fine(read_run_json, path)


def toml_literal(value) -> str:
    """A TOML literal of a JSON value (keys and strings quoted the JSON way, which TOML reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {toml_literal(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if value is None:
        return '""'  # TOML has no null
    return json.dumps(value)


SUITE_KEYS = list(BenchConfig.__dataclass_fields__)
toml_values = (
    json_values
    | st.floats()
    | st.sampled_from(
        [
            ["greedy"],
            ["beam", "nope"],
            [4, 0],
            {"beam": {"width": "x"}},
            {"greedy": {}},
            "qwen-chat",
        ]
    )
)


def toml_bytes(keys: list[str]) -> st.SearchStrategy[bytes]:
    tables = st.dictionaries(st.sampled_from(keys), toml_values, max_size=5)
    text = tables.map(
        lambda d: "".join(f"{json.dumps(k)} = {toml_literal(v)}\n" for k, v in d.items())
    )
    return st.binary(max_size=200) | text.map(str.encode) | text.map(lambda t: BOM + t.encode())


@settings(FAST, deadline=timedelta(seconds=5))
@example(b'strategies = ["beam"]\nstrategy_options = {"beam" = {"width" = "x"}}\n')
@example(b'strategy_options = {"beam" = {"width" = 0}}\nstrategies = ["beam"]\n')
@given(toml_bytes(SUITE_KEYS))
def test_bench_suites(path, data):
    suite = path.with_suffix(".toml")
    suite.write_bytes(data)
    fine(BenchConfig.from_toml, suite)


STEP_FORMAT_KEYS = ["delimiter", "prompt_template", "max_steps", "max_step_tokens", "step_tag"]
STEP_FORMAT_KEYS += ["use_chat_template", "system_prompt", "positive_token", "negative_token"]


@settings(FAST, deadline=timedelta(seconds=5))
@given(toml_bytes(STEP_FORMAT_KEYS))
def test_step_format_files(path, data):
    fmt = path.with_suffix(".toml")
    fmt.write_bytes(data)
    fine(get_step_format, str(fmt))


def test_a_step_format_file_with_a_byte_order_mark_is_accepted(path):
    fmt = path.with_suffix(".toml")
    fmt.write_bytes(BOM + b"max_steps = 5\n")
    assert get_step_format(str(fmt)).max_steps == 5


DATA_KEYS = ["question", "answer", "problem", "solution", "boxed_answer", "unique_id", "level"]
DATA_KEYS += ["subject", "type"]


@FAST
@given(st.sampled_from(["gsm8k", "math", "math500"]), jsonl_bytes(DATA_KEYS))
def test_data_files(path, name, data):
    root = path.parent / "data"
    rel = {"gsm8k": "gsm8k/test.jsonl", "math": "math/test.jsonl", "math500": "math/math500.jsonl"}
    (root / rel[name]).parent.mkdir(parents=True, exist_ok=True)
    (root / rel[name]).write_bytes(data)
    problems = fine(load_dataset, name, "test", data_dir=root)
    assert problems is None or all(p.text.strip() for p in problems)


PB_KEYS = ["id", "problem", "steps", "label", "final_answer_correct", "generator"]


@FAST
@given(
    st.binary(max_size=200)
    | st.lists(objects_with(PB_KEYS), max_size=3).map(lambda d: json.dumps(d).encode())
)
def test_processbench_files(path, data):
    root = path.parent / "pb"
    (root / "processbench").mkdir(parents=True, exist_ok=True)
    (root / "processbench" / "gsm8k.json").write_bytes(data)
    fine(load_processbench, "gsm8k", data_dir=root)


# the grader's inputs: any text, text from undecodable bytes (lone surrogates), answer-like text
answers = (
    st.text(max_size=60)
    | st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
    | st.sampled_from(
        ["\\boxed{", "\\frac{1}{0}", "1/0", "10^10^10", "x=", "9" * 400, "\\sqrt{-1}"]
    )
)


@settings(max_examples=40, deadline=timedelta(seconds=4))
@given(answers)
def test_extract_answer(text):
    out = fine(extract_answer, text)
    assert out is None or isinstance(out, str)


@settings(max_examples=30, deadline=timedelta(seconds=8))  # grade's own timeout bounds it (5 s)
@given(answers, answers)
def test_grade(prediction, gold):
    assert fine(grade, prediction, gold) in (True, False, None)

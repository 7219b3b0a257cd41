"""Dataset loaders against the real benchmark files, plus error handling on broken files."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from reasoner import datasets as ds
from reasoner.datasets import (
    PROCESSBENCH_SUBSETS,
    dataset_files,
    file_sha256,
    load_dataset,
    load_processbench,
)
from reasoner.types import Problem, ReasonerError

DATA_DIR = Path(
    os.environ.get("REASONER_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "gsm8k" / "test.jsonl").is_file(),
    reason=f"benchmark data not found at {DATA_DIR} (set REASONER_DATA to the shared/data directory)",
)


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the network: the hub fallback is tested with a fake `datasets` module."""
    monkeypatch.delenv("REASONER_DATA", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail


# ------------------------------------------------------------------------------------------
# Real files
# ------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    "name, split, count",
    [
        ("gsm8k", "test", 1319),
        ("gsm8k", "train", 7473),
        ("math500", "test", 500),
        ("math", "test", 5000),
    ],
)
def test_counts(name: str, split: str, count: int) -> None:
    problems = load_dataset(name, split, data_dir=DATA_DIR)
    assert len(problems) == count
    assert all(isinstance(p, Problem) and p.text and p.answer for p in problems)
    assert len({p.id for p in problems}) == count


@needs_data
def test_gsm8k_fields() -> None:
    first = load_dataset("gsm8k", "test", data_dir=DATA_DIR, limit=1)[0]
    assert first.id == "gsm8k-test-0000"
    assert first.answer == "18"
    assert first.text.startswith("Janet")
    assert first.reference is not None and first.reference.endswith("#### 18")
    assert first.metadata == {"dataset": "gsm8k", "split": "test", "index": 0}
    assert all("," not in p.answer for p in load_dataset("gsm8k", "test", data_dir=DATA_DIR))


@needs_data
def test_math_and_math500_fields() -> None:
    math = {p.id: p for p in load_dataset("math", "test", data_dir=DATA_DIR)}
    m500 = load_dataset("math500", "test", data_dir=DATA_DIR)
    assert m500[0].id == "test/precalculus/807.json"
    assert m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert m500[0].metadata["level"] == 2 and m500[0].metadata["subject"] == "Precalculus"
    first = math["test/algebra/1.json"]
    assert (
        first.answer == "2"
        and first.metadata["level"] == 3
        and first.metadata["subject"] == "Algebra"
    )
    # MATH500 is a subset of the MATH test set with identical problems and answers
    for p in m500:
        assert p.id in math and math[p.id].text == p.text and math[p.id].answer == p.answer


@needs_data
def test_math_train_keeps_problems_with_empty_boxes() -> None:
    train = load_dataset("math", "train", data_dir=DATA_DIR)
    assert len(train) == 7500
    empty = sorted(p.id for p in train if p.answer is None)
    assert empty == ["train/number_theory/7115.json", "train/number_theory/7117.json"]


@needs_data
@pytest.mark.parametrize(
    "subset, count, all_correct",
    [
        ("gsm8k", 400, 193),
        ("math", 1000, 406),
        ("olympiadbench", 1000, 339),
        ("omnimath", 1000, 241),
    ],
)
def test_processbench(subset: str, count: int, all_correct: int) -> None:
    items = load_processbench(subset, data_dir=DATA_DIR)
    assert len(items) == count
    assert sum(i.label == -1 for i in items) == all_correct
    for item in items:
        assert item.subset == subset and item.id.startswith(subset) and item.steps
        assert -1 <= item.label < len(item.steps)
        assert isinstance(item.final_answer_correct, bool)
        if item.label == -1:
            assert item.final_answer_correct
    assert items[0].id == f"{subset}-0" and items[0].generator


@needs_data
def test_limit() -> None:
    assert [p.id for p in load_dataset("gsm8k", "test", data_dir=DATA_DIR, limit=3)] == [
        "gsm8k-test-0000",
        "gsm8k-test-0001",
        "gsm8k-test-0002",
    ]
    assert load_dataset("math500", data_dir=DATA_DIR, limit=0) == []
    assert len(load_processbench("math", data_dir=DATA_DIR, limit=7)) == 7
    with pytest.raises(ReasonerError, match="limit"):
        load_dataset("gsm8k", data_dir=DATA_DIR, limit=-1)


@needs_data
def test_env_var_and_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONER_DATA", str(DATA_DIR))
    assert len(load_dataset("math500")) == 500
    (path,) = dataset_files("gsm8k", "test")
    assert path == DATA_DIR / "gsm8k" / "test.jsonl"
    # the checksum recorded in shared/data/README.md
    assert file_sha256(path) == "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
    assert dataset_files("processbench", "omnimath") == [
        DATA_DIR / "processbench" / "omnimath.json"
    ]
    assert dataset_files("arith", "test") == []


# ------------------------------------------------------------------------------------------
# Errors (synthetic files in tmp_path)
# ------------------------------------------------------------------------------------------


def _write_gsm8k(root: Path, lines: list[str]) -> Path:
    path = root / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"question": "What is 2+2?", "answer": "2+2=4\n#### 4"})


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write_gsm8k(tmp_path, [GOOD, '{"question": "oops", "answer": '])
    with pytest.raises(ReasonerError) as err:
        load_dataset("gsm8k", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "line 2" in msg and "malformed JSON" in msg and "field" in msg


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = _write_gsm8k(tmp_path, [GOOD])
    path.write_bytes(path.read_bytes() + b'{"question": "\xff"}\n')
    with pytest.raises(ReasonerError, match=r"line 2: not valid UTF-8"):
        load_dataset("gsm8k", "test", data_dir=tmp_path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write_gsm8k(tmp_path, [GOOD, "", json.dumps({"question": "no answer here"})])
    with pytest.raises(ReasonerError) as err:
        load_dataset("gsm8k", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "'answer'" in msg


def test_bad_field_values(tmp_path: Path) -> None:
    _write_gsm8k(tmp_path, [json.dumps({"question": "q", "answer": "no final line"})])
    with pytest.raises(ReasonerError, match=r"line 1: field 'answer' has no final '#### N'"):
        load_dataset("gsm8k", "test", data_dir=tmp_path)
    math = tmp_path / "math" / "math500.jsonl"
    math.parent.mkdir()
    math.write_text(json.dumps({"problem": "p", "solution": "s", "answer": 5}) + "\n")
    with pytest.raises(
        ReasonerError, match=r"math500.jsonl line 1: field 'answer' must be a string"
    ):
        load_dataset("math500", "test", data_dir=tmp_path)


def test_math_without_boxed_answer_field_derives_it(tmp_path: Path) -> None:
    path = tmp_path / "math" / "test.jsonl"
    path.parent.mkdir()
    rec = {
        "problem": "p",
        "solution": "so $\\boxed{\\frac{1}{2}}$.",
        "level": "Level 2",
        "type": "Algebra",
    }
    path.write_text(
        json.dumps(rec) + "\n" + json.dumps({"problem": "q", "solution": "none"}) + "\n"
    )
    with pytest.raises(ReasonerError, match=r"line 2: missing field 'boxed_answer'"):
        load_dataset("math", "test", data_dir=tmp_path)
    (p,) = load_dataset("math", "test", data_dir=tmp_path, limit=1)
    assert p.answer == "\\frac{1}{2}" and p.metadata["level"] == 2


def test_processbench_errors(tmp_path: Path) -> None:
    path = tmp_path / "processbench" / "gsm8k.json"
    path.parent.mkdir()
    good = {
        "id": "gsm8k-0",
        "problem": "p",
        "steps": ["a", "b"],
        "label": 1,
        "final_answer_correct": False,
    }
    bad = {k: v for k, v in good.items() if k != "label"}
    path.write_text(json.dumps([good, bad]))
    with pytest.raises(ReasonerError) as err:
        load_processbench("gsm8k", data_dir=tmp_path)
    assert (
        str(path) in str(err.value) and "record 1" in str(err.value) and "'label'" in str(err.value)
    )
    path.write_text(json.dumps([dict(good, label=2)]))
    with pytest.raises(ReasonerError, match="field 'label' must be -1 or a step index below 2"):
        load_processbench("gsm8k", data_dir=tmp_path)
    path.write_text("[{]")
    with pytest.raises(ReasonerError, match="line 1: malformed JSON"):
        load_processbench("gsm8k", data_dir=tmp_path)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ReasonerError, match="valid names: arith, gsm8k, math, math500"):
        load_dataset("svamp")
    with pytest.raises(ReasonerError, match="valid splits: test"):
        load_dataset("math500", "train", data_dir="/nowhere")
    with pytest.raises(ReasonerError, match="valid subsets: gsm8k, math, olympiadbench, omnimath"):
        load_processbench("aime")
    assert PROCESSBENCH_SUBSETS == ("gsm8k", "math", "olympiadbench", "omnimath")


def test_missing_file_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(ReasonerError) as err:
        load_dataset("math", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert (
        str(tmp_path / "math" / "test.jsonl") in msg
        and "--data-dir" in msg
        and "REASONER_DATA" in msg
    )
    with pytest.raises(ReasonerError, match="no data directory given.*REASONER_DATA"):
        load_processbench("gsm8k")


def test_hub_fallback_with_fake_datasets_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_load(repo: str, config: str | None, split: str) -> list[dict]:
        calls.append((repo, config, split))
        return [{"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}] * 3

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load))
    problems = load_dataset("gsm8k", "test", data_dir=tmp_path, limit=2)
    assert [p.answer for p in problems] == ["2", "2"]
    assert calls == [("openai/gsm8k", "main", "test")]
    # MATH has no hub fallback: the error still names the local path
    with pytest.raises(ReasonerError, match="no Hugging Face hub fallback"):
        load_dataset("math", "test", data_dir=tmp_path)


def test_arith_delegates_to_synthetic() -> None:
    from reasoner.synthetic import load_split

    expected = list(load_split("test"))[:3]
    assert load_dataset("arith", "test", limit=3) == expected
    assert ds.dataset_files("arith", "train") == []


# ------------------------------------------------------------------------------------------
# Byte-level trouble (#14): a byte-order mark, text that is not valid Unicode
# ------------------------------------------------------------------------------------------

GSM8K_LINE = {"question": "Ann has 2 pens. How many?", "answer": "work\n#### 2"}


def test_a_byte_order_mark_before_the_first_record_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    line = json.dumps(GSM8K_LINE) + "\n"
    (tmp_path / "gsm8k" / "test.jsonl").write_bytes(b"\xef\xbb\xbf" + (line * 2).encode())
    problems = load_dataset("gsm8k", "test", data_dir=tmp_path)
    assert [p.answer for p in problems] == ["2", "2"]
    (tmp_path / "processbench").mkdir()
    item = {"id": "a", "problem": "p", "steps": ["s"], "label": -1, "final_answer_correct": True}
    (tmp_path / "processbench" / "gsm8k.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps([item]).encode()
    )
    assert load_processbench("gsm8k", data_dir=tmp_path)[0].id == "a"


def test_a_lone_surrogate_or_bad_utf8_is_an_error_naming_file_line_and_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "gsm8k").mkdir()
    path = tmp_path / "gsm8k" / "test.jsonl"
    bad = {**GSM8K_LINE, "question": "Ann has \\ud800 pens?"}
    path.write_text(json.dumps(GSM8K_LINE) + "\n" + json.dumps(bad).replace("\\\\", "\\") + "\n")
    with pytest.raises(
        ReasonerError,
        match=r"test.jsonl line 2: field 'question' is not valid Unicode text \(a lone surrogate",
    ):
        load_dataset("gsm8k", "test", data_dir=tmp_path)
    (tmp_path / "processbench").mkdir()
    (tmp_path / "processbench" / "math.json").write_bytes(b'[{"id": "\xff"}]')
    with pytest.raises(ReasonerError, match=r"math.json: not valid UTF-8"):
        load_processbench("math", data_dir=tmp_path)
    item = {"id": "a", "problem": "p", "steps": ["ok", "\ud800"], "label": -1}
    item["final_answer_correct"] = True
    (tmp_path / "processbench" / "math.json").write_text(json.dumps([item]))
    with pytest.raises(ReasonerError, match=r"record 0: field 'steps' item 1 is not valid Unicode"):
        load_processbench("math", data_dir=tmp_path)

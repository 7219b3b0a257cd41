"""Benchmark datasets: GSM8K, MATH, MATH500, ProcessBench and the synthetic `arith` suite.

Files come from a data directory (the `data_dir` argument, else the REASONER_DATA environment
variable) laid out as in shared/data: gsm8k/{train,test,test_socratic}.jsonl,
math/{train,test,math500}.jsonl and processbench/{gsm8k,math,olympiadbench,omnimath}.json.
When a file is missing and the optional `datasets` package is installed, GSM8K, MATH500 and
ProcessBench are fetched from the Hugging Face hub instead. Every record is validated: a bad
line is a `ReasonerError` naming the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoner.grading.answers import last_boxed
from reasoner.synthetic import load_split
from reasoner.types import Problem, ReasonerError

__all__ = [
    "DATASETS",
    "PROCESSBENCH_SUBSETS",
    "ProcessBenchItem",
    "load_dataset",
    "load_processbench",
    "dataset_files",
    "file_sha256",
    "resolve_data_dir",
]

DATA_ENV = "REASONER_DATA"

# name -> split -> path relative to the data dir (arith is generated, not read from files)
DATASETS: dict[str, dict[str, str]] = {
    "gsm8k": {
        "train": "gsm8k/train.jsonl",
        "test": "gsm8k/test.jsonl",
        "test_socratic": "gsm8k/test_socratic.jsonl",
    },
    "math": {"train": "math/train.jsonl", "test": "math/test.jsonl"},
    "math500": {"test": "math/math500.jsonl"},
    "arith": {},
}
PROCESSBENCH_SUBSETS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")

# Hugging Face hub fallbacks: (dataset name, config, split); used only when a local file is missing.
_HUB: dict[tuple[str, str], tuple[str, str | None, str]] = {
    ("gsm8k", "train"): ("openai/gsm8k", "main", "train"),
    ("gsm8k", "test"): ("openai/gsm8k", "main", "test"),
    ("gsm8k", "test_socratic"): ("openai/gsm8k", "socratic", "test"),
    ("math500", "test"): ("HuggingFaceH4/MATH-500", None, "test"),
    **{("processbench", s): ("Qwen/ProcessBench", None, s) for s in PROCESSBENCH_SUBSETS},
}

_GSM8K_ANSWER_RE = re.compile(r"\n####\s*(.+?)\s*$")
_LEVEL_RE = re.compile(r"(\d+)")


@dataclass
class ProcessBenchItem:
    """One ProcessBench solution: its steps and the index of the first wrong step (-1: none)."""

    id: str
    problem: str
    steps: list[str]
    label: int
    final_answer_correct: bool
    subset: str
    generator: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Paths and checksums
# --------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The data directory: the argument, else $REASONER_DATA, else None (no local data)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return None


def _check_split(name: str, split: str) -> None:
    if name not in DATASETS:
        raise ReasonerError(
            f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))} "
            f"(ProcessBench: load_processbench(subset))"
        )
    splits = DATASETS[name]
    if splits and split not in splits:
        raise ReasonerError(
            f"unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(splits)}"
        )


def _relpath(name: str, split: str) -> str:
    if name == "processbench":
        if split not in PROCESSBENCH_SUBSETS:
            raise ReasonerError(
                f"unknown ProcessBench subset {split!r}; valid subsets: {', '.join(PROCESSBENCH_SUBSETS)}"
            )
        return f"processbench/{split}.json"
    _check_split(name, split)
    return DATASETS[name].get(split, "")


def dataset_files(name: str, split: str = "test", data_dir: str | Path | None = None) -> list[Path]:
    """The local files `load_dataset(name, split)` reads (for run metadata and checksums).
    `name="processbench"` takes the subset as `split`. Empty for the generated `arith` suite
    and when no data directory is configured."""
    rel = _relpath(name, split)
    root = resolve_data_dir(data_dir)
    if not rel or root is None:
        return []
    return [root / rel]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_error(
    name: str, split: str, root: Path | None, rel: str, hub_error: str
) -> ReasonerError:
    if root is None:
        where = (
            f"no data directory given: pass data_dir (CLI: --data-dir DIR) or set {DATA_ENV}=DIR, "
            f"where DIR contains {rel}"
        )
    else:
        where = (
            f"file not found: {root / rel} (data dir {root}); pass another directory with "
            f"data_dir / --data-dir or {DATA_ENV}, laid out as DIR/{rel}"
        )
    return ReasonerError(f"cannot load {name} {split!r}: {where}; {hub_error}")


# --------------------------------------------------------------------------------------------
# Record readers
# --------------------------------------------------------------------------------------------


def _utf8_error(where: str, exc: UnicodeDecodeError, field: str) -> ReasonerError:
    """The error for a data file's bytes that are not UTF-8, at `where` (file, maybe line)."""
    return ReasonerError(
        f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start}); field: {field}"
    )


def _json_error(where: str, exc: json.JSONDecodeError, field: str) -> ReasonerError:
    """The error for a data file's text that is not JSON, at `where` (file and line)."""
    return ReasonerError(
        f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); field: {field}"
    )


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; bad lines raise ReasonerError."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:  # a byte-order mark before the first record is fine
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _utf8_error(f"{path} line {lineno}", exc, "<whole record>") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _json_error(f"{path} line {lineno}", exc, "<whole record>") from None
            if not isinstance(record, dict):
                raise ReasonerError(
                    f"{path} line {lineno}: expected a JSON object, got {type(record).__name__}; "
                    f"field: <whole record>"
                )
            yield lineno, record


def _field(
    record: dict[str, Any], key: str, where: str, kind: type = str, allow_empty: bool = False
) -> Any:
    if key not in record or record[key] is None:
        raise ReasonerError(f"{where}: missing field {key!r} (record has: {', '.join(record)})")
    value = record[key]
    if kind is str and not isinstance(value, str):
        raise ReasonerError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if kind is str and not allow_empty and not value.strip():
        raise ReasonerError(f"{where}: field {key!r} is empty")
    if kind is str:
        _check_unicode(value, where, repr(key))
    return value


def _check_unicode(text: str, where: str, what: str) -> None:
    """A lone surrogate (JSON "\ud800") cannot be tokenized or written back: an error here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ReasonerError(
            f"{where}: field {what} is not valid Unicode text (a lone surrogate at character "
            f"{exc.start})"
        ) from None


def _level(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    m = _LEVEL_RE.search(str(value))
    return int(m.group(1)) if m else None


def _gsm8k_problem(record: dict[str, Any], where: str, split: str, index: int) -> Problem:
    question = _field(record, "question", where)
    solution = _field(record, "answer", where)
    m = _GSM8K_ANSWER_RE.search(solution)
    if not m:
        raise ReasonerError(f"{where}: field 'answer' has no final '#### N' line")
    answer = m.group(1).replace(",", "")
    return Problem(
        text=question,
        id=f"gsm8k-{split}-{index:04d}",
        answer=answer,
        reference=solution,
        metadata={"dataset": "gsm8k", "split": split, "index": index},
    )


def _math_problem(record: dict[str, Any], where: str, name: str, split: str, index: int) -> Problem:
    text = _field(record, "problem", where)
    solution = _field(record, "solution", where)
    key = "answer" if name == "math500" else "boxed_answer"
    if key in record or name == "math500":
        # two MATH train solutions box nothing (train/number_theory: "\\boxed{}"): keep the
        # problem, with no gold answer, rather than refusing the whole split
        answer = _field(record, key, where, allow_empty=True).strip() or None
    else:  # other MATH copies have no boxed_answer: derive it the way shared/data did
        answer = last_boxed(solution)
        if answer is None:
            raise ReasonerError(
                f"{where}: missing field 'boxed_answer' and no \\boxed{{}} in 'solution'"
            )
    unique_id = record.get("unique_id") or f"{split}/{index}"
    subject = record.get("subject", record.get("type"))
    return Problem(
        text=text,
        id=str(unique_id),
        answer=answer,
        reference=solution,
        metadata={
            "dataset": name,
            "split": split,
            "index": index,
            "unique_id": unique_id,
            "subject": subject,
            "level": _level(record.get("level")),
        },
    )


def _processbench_item(record: Any, where: str, subset: str) -> ProcessBenchItem:
    if not isinstance(record, dict):
        raise ReasonerError(f"{where}: expected a JSON object, got {type(record).__name__}")
    item_id = str(_field(record, "id", where, kind=object))
    problem = _field(record, "problem", where)
    steps = _field(record, "steps", where, kind=list)
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise ReasonerError(f"{where}: field 'steps' must be a list of strings")
    for i, step in enumerate(steps):
        _check_unicode(step, where, f"'steps' item {i}")
    label = _field(record, "label", where, kind=int)
    if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps):
        raise ReasonerError(
            f"{where}: field 'label' must be -1 or a step index below {len(steps)}, got {label!r}"
        )
    final = _field(record, "final_answer_correct", where, kind=bool)
    if not isinstance(final, bool):
        raise ReasonerError(f"{where}: field 'final_answer_correct' must be true/false")
    return ProcessBenchItem(
        id=item_id,
        problem=problem,
        steps=list(steps),
        label=label,
        final_answer_correct=final,
        subset=subset,
        generator=str(record.get("generator", "")),
    )


def _hub_rows(name: str, split: str) -> tuple[Iterable[dict[str, Any]] | None, str]:
    """Rows from the Hugging Face hub, or (None, why not). Imports `datasets` lazily."""
    spec = _HUB.get((name, split))
    if spec is None:
        return None, "no Hugging Face hub fallback for this dataset"
    try:
        import datasets as hf_datasets  # optional dependency
    except ImportError:
        return None, "the optional 'datasets' package is not installed (no hub fallback)"
    repo, config, hub_split = spec
    try:
        rows = hf_datasets.load_dataset(repo, config, split=hub_split)
    except Exception as exc:  # offline, renamed, ...
        return None, f"hub fallback {repo} failed: {type(exc).__name__}: {exc}"
    return rows, f"hf://{repo}"


def _limited(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ReasonerError(f"limit must be a non-negative integer or None, got {limit!r}")
    return limit


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    split: str = "test",
    data_dir: str | Path | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems of `name` ("gsm8k", "math", "math500" or "arith") and `split`, in file order,
    the first `limit` of them if given. Gold answers are in `Problem.answer`."""
    _check_split(name, split)
    limit = _limited(limit)
    if name == "arith":
        problems = list(load_split(split))
        return problems if limit is None else problems[:limit]

    rel = DATASETS[name][split]
    root = resolve_data_dir(data_dir)
    path = root / rel if root is not None else None
    if path is not None and path.is_file():
        records: Iterable[tuple[int, dict[str, Any]]] = _iter_jsonl(path)
        source, unit = str(path), "line"
    else:
        rows, source = _hub_rows(name, split)
        if rows is None:
            raise _missing_error(name, split, root, rel, source)
        records = enumerate(rows, start=1)
        unit = "row"

    problems: list[Problem] = []
    for index, (lineno, record) in enumerate(records):
        if limit is not None and index >= limit:
            break
        where = f"{source} {unit} {lineno}"
        if name == "gsm8k":
            problems.append(_gsm8k_problem(record, where, split, index))
        else:
            problems.append(_math_problem(record, where, name, split, index))
    return problems


def load_processbench(
    subset: str, data_dir: str | Path | None = None, limit: int | None = None
) -> list[ProcessBenchItem]:
    """ProcessBench items of `subset` (gsm8k, math, olympiadbench or omnimath), in file order."""
    rel = _relpath("processbench", subset)
    limit = _limited(limit)
    root = resolve_data_dir(data_dir)
    path = root / rel if root is not None else None
    if path is not None and path.is_file():
        try:
            with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is fine
                data = json.load(fh)
        except UnicodeDecodeError as exc:
            raise _utf8_error(str(path), exc, "<whole file>") from None
        except json.JSONDecodeError as exc:
            raise _json_error(f"{path} line {exc.lineno}", exc, "<whole file>") from None
        if not isinstance(data, list):
            raise ReasonerError(
                f"{path}: expected a JSON array of records, got {type(data).__name__}"
            )
        rows: Iterable[Any] = data
        source = str(path)
    else:
        hub, source = _hub_rows("processbench", subset)
        if hub is None:
            raise _missing_error("processbench", subset, root, rel, source)
        rows = hub
    items: list[ProcessBenchItem] = []
    for index, record in enumerate(rows):
        if limit is not None and index >= limit:
            break
        items.append(_processbench_item(record, f"{source} record {index}", subset))
    return items

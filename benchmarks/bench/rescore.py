"""Re-scoring a saved step tree with another PRM: scoring only, no generation.

`reasoner replay` (see `rescore_run`) needs three things per saved tree, and this module owns
them: the record a bench run with `--save-trees` stores beside each tree (`replay_record`: the
policy's step format and both models' parameter counts), which chains of a tree to re-score
(`chains_to_score`), and the re-scoring itself (`rescore_tree`), metered in PRM tokens and
seconds. `saved_tree_bytes` reports what the saved trees weigh.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from reasoner.jsonl import iter_jsonl
from reasoner.models.base import Policy, ProcessRewardModel, ScoreRequest
from reasoner.models.chunking import DEFAULT_CHAINS_PER_CALL, calls_limit
from reasoner.tree import Node, StepTree

REPLAY_RECORD = "replay"  # the key of a saved tree dict holding its `replay_record`


def replay_record(policy: Policy, prm: ProcessRewardModel | None) -> dict[str, Any]:
    """What a replay needs beside a saved tree and cannot re-derive without loading the
    policy: its step format (answers are re-extracted by it) and the parameter counts that turn
    tokens into FLOPs."""
    return {
        "step_format": policy.step_format.to_dict(),
        "policy_parameters": policy.num_parameters,
        "prm_parameters": prm.num_parameters if prm is not None else 0,
    }


def chains_to_score(tree: StepTree, rollouts: list[int] | None = None) -> list[Node]:
    """The nodes whose chains a re-scoring scores: every rollout end of a best-of-N tree
    (`rollouts`, the root's own empty rollout left out), else every scored node without a
    scored child (the source PRM scored each such chain, so every scored node lies on one)."""
    if rollouts is not None:
        return [tree[i] for i in dict.fromkeys(rollouts) if i != 0]
    scored = {n.id for n in tree.nodes if n.prm_score is not None and n.parent is not None}
    return [tree[i] for i in sorted(scored) if not any(c in scored for c in tree[i].children)]


def rescore_tree(tree: StepTree, prm: ProcessRewardModel, ends: list[Node]) -> tuple[int, float]:
    """Replace the PRM scores of the chains ending at `ends` by `prm`'s (a step's score is the
    first scored chain's through it, as the controller sets it); every other score is cleared.
    Returns the PRM tokens computed and the seconds the scoring took."""
    for n in tree.nodes:
        n.prm_score = None
    if not ends:
        return 0, 0.0
    if hasattr(prm, "clear_cache"):  # this tree's cost is its own, whatever was scored before
        prm.clear_cache()
    paths = [tree.path(n) for n in ends]
    requests = [ScoreRequest(tree.problem_text, [n.text for n in path]) for path in paths]
    per_call = calls_limit(prm, "max_chains_per_call", DEFAULT_CHAINS_PER_CALL)
    tokens = 0
    t0 = time.perf_counter()
    for start in range(0, len(requests), per_call):
        scores, used = prm.score(requests[start : start + per_call])
        tokens += used
        for path, values in zip(paths[start : start + per_call], scores):
            for n, v in zip(path, values):
                if n.prm_score is None:
                    n.prm_score = float(v)
    return tokens, time.perf_counter() - t0


def saved_tree_bytes(out_dir: Path) -> dict[str, int]:
    """What a run's saved trees weigh: rows with a tree and the bytes of their tree JSON in
    results.jsonl, the bytes of the sampling runs' trees in samples.jsonl, and both files' sizes."""
    out = Path(out_dir)
    report = {"rows_with_tree": 0, "tree_bytes": 0, "sample_tree_bytes": 0}
    results, samples = out / "results.jsonl", out / "samples.jsonl"
    for _, data in iter_jsonl(results, "result row") if results.exists() else ():
        if data.get("tree"):
            report["rows_with_tree"] += 1
            report["tree_bytes"] += len(json.dumps(data["tree"]))
    for _, data in iter_jsonl(samples, "sample row") if samples.exists() else ():
        if data.get("tree"):
            report["sample_tree_bytes"] += len(json.dumps(data["tree"]))
    report["results_bytes"] = results.stat().st_size if results.exists() else 0
    report["samples_bytes"] = samples.stat().st_size if samples.exists() else 0
    return report

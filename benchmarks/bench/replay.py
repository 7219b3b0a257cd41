"""Replaying best-of-N-family cells at every budget from ONE sampling run (`subsample = true`).

A strategy that declares `replayable` (best_of_n, majority, weighted_best_of_n) has a budget-n
result that is a function of the first n complete samples from the root. So one sampling run per
(PRM, seed) at the largest budget stores its tree (the N rollouts, every chain PRM-scored) in
samples.jsonl as a `SampleRow`, and a budget-n row replays the real strategy against a stand-in
policy that returns the first n stored rollouts and a stand-in PRM that returns their stored
scores. The HF backend seeds rollout j of a request from (request seed, j), so the first n of N
rollouts are exactly the rollouts a budget-n run samples: the replayed rows equal real runs, at
the cost of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.bench.grid import Cell, is_replayed
from benchmarks.bench.rows import written_reason
from benchmarks.config import BenchConfig
from reasoner.config_io import check_types
from reasoner.controller import Controller, Limits, is_cut
from reasoner.models.base import (
    Continuation,
    GenRequest,
    Policy,
    ProcessRewardModel,
    ScoreRequest,
    StepPiece,
)
from reasoner.registry import get_strategy
from reasoner.search import Pick, PRMUse, Rollout, Score, Search, SearchContext, Strategy
from reasoner.step_format import StepFormat
from reasoner.tree import StepTree
from reasoner.types import Problem, ReasonerError, Solution, Stats


class SampleStrategy(Strategy):
    """The sampling run's strategy: N rollouts from the root, all scored when there is a PRM.

    Not registered (it is the runner's tool, not a search); it records the rollout order."""

    name = "subsample-source"
    prm = PRMUse.OPTIONAL

    def search(self, ctx: SearchContext) -> Search:
        [leaves] = yield Rollout([ctx.tree.root], k=ctx.budget)
        ctx.tree.root.meta["rollouts"] = [leaf.id for leaf in leaves]
        scorable = [leaf for leaf in leaves if leaf.parent is not None]
        if ctx.has_prm and scorable:
            yield Score(scorable)
        return Pick(node=None, reason="samples")


@dataclass(frozen=True)
class Source:
    """Which sampling run a replayed cell comes from: one per (PRM, seed)."""

    prm: str
    seed: int


def source_of(cfg: BenchConfig, cell: Cell, cells: list[Cell]) -> Source:
    """Which sampling run a replayed cell is replayed from: its own PRM's; a PRM-free cell
    shares the first PRM's samples of its seed when there is one (paired comparison)."""
    if cell.prm != "none":
        return Source(cell.prm, cell.seed)
    with_prm = {c.prm for c in cells if is_replayed(cfg, c) and c.prm != "none"}
    for p in cfg.prms:
        if p in with_prm:
            return Source(p, cell.seed)
    return Source("none", cell.seed)


@dataclass
class SampleRow:
    """One problem's sampling run, as a line of samples.jsonl stores it."""

    problem_id: str
    prm: str
    seed: int
    budget: int  # N: the rollouts drawn
    error: str | None
    reason: str  # as result rows write it (`rows.written_reason`)
    stats: Stats
    policy_parameters: int
    prm_parameters: int
    step_format: dict[str, Any]  # the policy's StepFormat, serialized
    tree: dict[str, Any] | None  # the serialized StepTree with every rollout and score

    @property
    def source(self) -> Source:
        return Source(self.prm, self.seed)

    @classmethod
    def of(
        cls,
        problem: Problem,
        source: Source,
        budget: int,
        sol: Solution,
        policy: Policy,
        prm: ProcessRewardModel | None,
    ) -> SampleRow:
        """The stored record of a sampling run's Solution."""
        return cls(
            problem_id=problem.id,
            prm=source.prm,
            seed=source.seed,
            budget=budget,
            error=sol.error,
            reason=written_reason(sol),
            stats=sol.stats,
            policy_parameters=policy.num_parameters,
            prm_parameters=prm.num_parameters if prm is not None else 0,
            step_format=policy.step_format.to_dict(),
            tree=sol.tree.to_dict() if sol.tree is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "prm": self.prm,
            "seed": self.seed,
            "budget": self.budget,
            "error": self.error,
            "reason": self.reason,
            "stats": self.stats.to_dict(),
            "policy_parameters": self.policy_parameters,
            "prm_parameters": self.prm_parameters,
            "step_format": self.step_format,
            "tree": self.tree,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRow:
        """A stored sampling run; KeyError for a missing key, ReasonerError for a bad value."""
        row = cls(
            problem_id=data["problem_id"],
            prm=data["prm"],
            seed=data["seed"],
            budget=data["budget"],
            error=data.get("error"),
            reason=data.get("reason", ""),
            stats=Stats(**data["stats"]),
            policy_parameters=data["policy_parameters"],
            prm_parameters=data["prm_parameters"],
            step_format=data["step_format"],
            tree=data.get("tree"),
        )
        check_types(row)
        check_types(row.stats)
        return row


class ReplayPolicy:
    """Serves a Rollout from the root with the first k stored rollouts; nothing else."""

    def __init__(
        self, tree: StepTree, rollouts: list[int], step_format: StepFormat, num_parameters: int
    ):
        self.tree = tree
        self.rollouts = rollouts
        self.step_format = step_format
        self.num_parameters = num_parameters
        self.max_context = 1 << 30

    def encode_prompt(self, problem_text: str) -> list[int]:
        return list(self.tree.prompt_ids)

    def generate(self, requests: list[GenRequest]) -> list[list[Continuation]]:
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
                        finished=not (is_cut(path[-1]) or any(n.truncated for n in path)),
                        truncated=is_cut(path[-1]) or any(n.truncated for n in path),
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


class ReplayPRM:
    """Returns the stored PRM scores of stored chains; tokens: the chains' share of the run's,
    by characters, counting the problem once per call as the sampling run did."""

    def __init__(
        self,
        problem: str,
        tree: StepTree,
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

    def score(self, requests: list[ScoreRequest]) -> tuple[list[list[float]], int]:
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


def sampling_controller(
    cfg: BenchConfig,
    source: Source,
    budget: int,
    policy: Policy,
    prm: ProcessRewardModel | None,
) -> Controller:
    """The controller of a sampling run at `budget` (its node cap grown to hold N rollouts)."""
    return Controller(
        policy,
        prm,
        seed=source.seed,
        temperature=cfg.temperature,
        limits=Limits(
            max_nodes=max(cfg.max_nodes, 64 * budget),
            max_depth=policy.step_format.max_steps,
            max_seconds=cfg.max_seconds_per_problem,
        ),
    )


def replay(problem: Problem, cell: Cell, sample: SampleRow, cfg: BenchConfig) -> Solution:
    """The cell's Solution, computed from the first `cell.budget` rollouts of a sampling run."""
    if sample.error or not sample.tree:
        return Solution.failed(problem.id, cell.strategy, sample.error or "no samples stored")
    tree = StepTree.from_dict(sample.tree)
    rollouts = tree.root.meta.get("rollouts", [])
    fmt = StepFormat.from_dict(sample.step_format)
    src = sample.stats
    policy = ReplayPolicy(tree, rollouts, fmt, sample.policy_parameters)
    strategy = get_strategy(cell.strategy)(**cfg.strategy_options.get(cell.strategy, {}))
    prm = None
    if cell.prm != "none" and strategy.prm is not PRMUse.UNUSED:
        prm = ReplayPRM(
            problem.text, tree, rollouts, src.prm_tokens, sample.prm_parameters, sample.reason
        )
    controller = Controller(
        policy,
        prm,
        seed=cell.seed,
        temperature=cfg.temperature,
        aggregation=cell.aggregation if cell.aggregation != "-" else "min",
        limits=Limits(max_nodes=cfg.max_nodes, max_depth=fmt.max_steps, max_seconds=math.inf),
    )
    [sol] = controller.run([problem.without_answer()], strategy, cell.budget)
    # model time is not re-measured: the rollouts' share of the sampling run's, by FLOPs
    share = sol.stats.flops / src.flops if src.flops else 0.0
    sol.stats.seconds = src.seconds * share
    sol.stats.wall_seconds = src.wall_seconds * share
    return sol

"""The controller: runs strategies in lockstep, batching every pending model request.

Each tick gathers the pending request of every live search (all problems of a batch), serves all
generation requests with one policy call and all scoring requests with one PRM call, then hands
the results back. It meters tokens, FLOPs and time per problem and enforces the hard caps.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from reasoner.aggregation import aggregate, answer_key, vote
from reasoner.grading.answers import extract_answer
from reasoner.models.base import Continuation, GenRequest, ScoreRequest
from reasoner.search import Expand, Pick, PRMUse, Rollout, Score, SearchContext, Strategy
from reasoner.tree import Node, StepTree
from reasoner.types import Problem, ReasonerError, Solution, Stats


def check_temperature(value: Any, what: str = "temperature") -> float:
    """A sampling temperature: a finite real number >= 0 (0 = greedy), else a clear error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ReasonerError(f"{what} must be a finite number >= 0 (0 = greedy), got {value!r}")
    return float(value)


@dataclass
class Limits:
    """Hard caps so a search always terminates."""

    max_nodes: int = 4096
    max_depth: int = 12
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        for name in ("max_nodes", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ReasonerError(f"{name} must be an integer >= 1, got {value!r}")
        seconds = self.max_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ReasonerError(f"max_seconds must be a number >= 0, got {seconds!r}")


@dataclass
class _Run:
    problem: Problem
    strategy_name: str = ""
    tree: StepTree | None = None
    search: Any = None
    pending: Any = None
    stats: Stats = field(default_factory=Stats)
    started: float = 0.0
    solution: Solution | None = None
    expansions: dict[int, int] = field(default_factory=dict)


class Controller:
    """Serves strategy requests with a policy and an optional PRM."""

    def __init__(
        self,
        policy: Any,
        prm: Any = None,
        seed: int = 0,
        temperature: float = 1.0,
        aggregation: str = "min",
        limits: Limits | None = None,
    ):
        self.policy = policy
        self.prm = prm
        self.seed = seed
        self.temperature = check_temperature(temperature)
        self.aggregation = aggregation
        self.limits = limits or Limits()

    # ------------------------------------------------------------------------------------------
    def run(self, problems: list[Problem], strategy: Strategy, budget: int) -> list[Solution]:
        """Solve every problem with `strategy`; all searches advance together."""
        if strategy.prm is PRMUse.REQUIRED and self.prm is None:
            raise ReasonerError(
                f"strategy {strategy.name!r} needs a PRM; pass prm=... (or 'embedded')"
            )
        for model in (self.policy, self.prm):
            # each call's metered tokens and seconds are its own, whatever ran before it
            clear = getattr(model, "clear_cache", None)
            if clear is not None:
                clear()
        runs = [_Run(problem=p) for p in problems]
        for run in runs:
            self._start(run, strategy, budget)
        live = [r for r in runs if r.solution is None]
        while live:
            self._serve(live)
            live = [r for r in live if r.solution is None]
        return [r.solution for r in runs]  # type: ignore[misc]

    def _start(self, run: _Run, strategy: Strategy, budget: int) -> None:
        run.started = time.perf_counter()
        run.strategy_name = strategy.name
        try:
            prompt = self.policy.encode_prompt(run.problem.text)
        except ReasonerError as err:  # e.g. a prompt longer than the context: this problem only
            run.solution = Solution.failed(run.problem.id, strategy.name, str(err))
            return
        run.tree = StepTree(run.problem.text, prompt, run.problem.id)
        ctx = SearchContext(
            tree=run.tree,
            budget=budget,
            aggregation=self.aggregation,
            has_prm=self.prm is not None,
            max_depth=self.limits.max_depth,
        )
        run.search = strategy.search(ctx)
        self._advance(run, None)

    def _advance(self, run: _Run, result: Any) -> None:
        """Send a result into the search and store its next request (or finish it)."""
        try:
            run.pending = run.search.send(result)
        except StopIteration as stop:
            self._finish(run, stop.value)
            return
        over = self._over_limit(run)
        if over:
            run.search.close()
            self._finish(run, self._fallback_pick(run, over))

    def _over_limit(self, run: _Run) -> str:
        if len(run.tree) > self.limits.max_nodes:
            return "node-limit"
        if time.perf_counter() - run.started > self.limits.max_seconds:
            return "time-limit"
        return ""

    # ------------------------------------------------------------------------------------------
    def _serve(self, live: list[_Run]) -> None:
        gen_runs = [r for r in live if isinstance(r.pending, (Expand, Rollout))]
        score_runs = [r for r in live if isinstance(r.pending, Score)]
        for r in live:
            if r not in gen_runs and r not in score_runs:
                raise ReasonerError(
                    f"strategy yielded {type(r.pending).__name__}; expected Expand, Rollout or Score"
                )
        results: dict[int, Any] = {}
        if gen_runs:
            results.update(self._serve_generation(gen_runs))
        if score_runs:
            results.update(self._serve_scoring(score_runs))
        for r in gen_runs + score_runs:
            self._advance(r, results[id(r)])

    def _seed_for(self, run: _Run, node: Node) -> int:
        count = run.expansions.get(node.id, 0)
        run.expansions[node.id] = count + 1
        key = f"{self.seed}:{run.problem.id or run.problem.text}:{node.id}:{count}"
        return zlib.crc32(key.encode())

    def _serve_generation(self, runs: list[_Run]) -> dict[int, Any]:
        requests: list[GenRequest] = []
        owners: list[tuple[_Run, Node]] = []
        for run in runs:
            req = run.pending
            ks = req.k if isinstance(req.k, list) else [req.k] * len(req.nodes)
            if len(ks) != len(req.nodes):
                raise ReasonerError("a request's k list must have one entry per node")
            temp = self.temperature
            if req.temperature is not None:
                temp = check_temperature(
                    req.temperature, f"strategy {run.strategy_name!r}: temperature"
                )
            for node, k in zip(req.nodes, ks):
                if k < 1:
                    raise ReasonerError(f"requested {k} samples; k must be >= 1")
                mode = "end" if isinstance(req, Rollout) else "step"
                remaining = max(1, self.limits.max_depth - node.depth)
                requests.append(
                    GenRequest(
                        run.tree.prefix_ids(node),
                        k,
                        self._seed_for(run, node),
                        mode,
                        temp,
                        remaining,
                    )
                )
                owners.append((run, node))
        t0 = time.perf_counter()
        outputs = self.policy.generate(requests) if requests else []
        elapsed = time.perf_counter() - t0
        total_tokens = sum(c.prompt_tokens + c.new_tokens for out in outputs for c in out) or 1
        per_run: dict[int, list[list[Node]]] = {id(r): [] for r in runs}
        for (run, node), conts in zip(owners, outputs):
            new_nodes = [self._attach(run, node, c) for c in conts]
            per_run[id(run)].append(new_nodes)
            tokens = sum(c.prompt_tokens + c.new_tokens for c in conts)
            run.stats.policy_tokens += tokens
            run.stats.policy_new_tokens += sum(c.new_tokens for c in conts)
            run.stats.seconds += elapsed * tokens / total_tokens
        for run in runs:
            run.stats.policy_calls += 1
        return per_run

    def _attach(self, run: _Run, parent: Node, cont: Continuation) -> Node:
        """Add a continuation's steps under `parent`; return the last node added."""
        tree = run.tree
        node = parent
        for piece in cont.steps:
            node = tree.add_child(
                node,
                text=piece.text,
                token_ids=piece.token_ids,
                logprob=piece.logprob,
                truncated=piece.truncated,
            )
        closes = (
            node is parent  # nothing generated: the chain ends here
            or cont.finished  # the policy emitted end-of-sequence
            or isinstance(run.pending, Rollout)  # a rollout is complete, or cut by a cap
            or node.depth >= self.limits.max_depth
        )
        if closes:
            node.terminal = True
        if node.terminal:
            node.answer = extract_answer(self.policy.step_format.join_steps(tree.steps(node)))
        return node

    def _serve_scoring(self, runs: list[_Run]) -> dict[int, Any]:
        if self.prm is None:
            raise ReasonerError("a strategy asked for PRM scores but no PRM is configured")
        requests: list[ScoreRequest] = []
        owners: list[tuple[_Run, Node]] = []
        for run in runs:
            for node in run.pending.nodes:
                path = run.tree.path(node)
                if path and all(n.prm_score is not None for n in path):
                    continue  # every step already scored: served from the cache
                requests.append(ScoreRequest(run.problem.text, [n.text for n in path]))
                owners.append((run, node))
        if requests:
            t0 = time.perf_counter()
            scores, tokens = self.prm.score(requests)
            elapsed = time.perf_counter() - t0
            lengths = [sum(len(s) for s in r.steps) + 1 for r in requests]
            total = sum(lengths)
            for (run, node), values, length in zip(owners, scores, lengths):
                for n, v in zip(run.tree.path(node), values):
                    if n.prm_score is None:
                        n.prm_score = float(v)
                share = length / total
                run.stats.prm_tokens += int(round(tokens * share))
                run.stats.seconds += elapsed * share
        out: dict[int, Any] = {}
        for run in runs:
            run.stats.prm_calls += 1
            out[id(run)] = [
                [n.prm_score if n.prm_score is not None else 0.0 for n in run.tree.path(node)]
                for node in run.pending.nodes
            ]
        return out

    # ------------------------------------------------------------------------------------------
    def _fallback_pick(self, run: _Run, reason: str) -> Pick:
        """When a cap stops a search: the best finished chain so far (by PRM, else by vote)."""
        terminals = [n for n in run.tree.terminals() if n.answer is not None]
        if not terminals:
            return Pick(node=None, reason=reason)
        if all(all(p.prm_score is not None for p in run.tree.path(n)) for n in terminals):
            best = max(
                terminals,
                key=lambda n: aggregate([p.prm_score for p in run.tree.path(n)], self.aggregation),
            )
            return Pick(node=best, reason=reason)
        votes = vote(n.answer for n in terminals)
        top = max(votes, key=votes.get)
        return Pick(
            node=next(n for n in terminals if answer_key(n.answer) == top),
            reason=reason,
            candidates=votes,
        )

    def _finish(self, run: _Run, pick: Pick | None) -> None:
        tree = run.tree
        pick = pick or Pick(node=None, reason="no-pick")
        node = pick.node
        steps = tree.steps(node) if node is not None else []
        scores = [n.prm_score for n in tree.path(node)] if node is not None else []
        step_scores = [s for s in scores if s is not None]
        stats = run.stats
        stats.nodes = len(tree)
        stats.wall_seconds = time.perf_counter() - run.started
        stats.distinct_tokens = tree.distinct_tokens()
        stats.flops = 2.0 * self.policy.num_parameters * stats.policy_tokens
        if self.prm is not None:
            stats.flops += 2.0 * self.prm.num_parameters * stats.prm_tokens
        answer = node.answer if node is not None else None
        if node is not None and answer is None and steps:
            answer = extract_answer(self.policy.step_format.join_steps(steps))
        reason = pick.reason
        if node is None and reason == "finished":
            reason = "no-terminal"
        run.solution = Solution(
            answer=answer,
            steps=steps,
            score=pick.score,
            step_scores=step_scores,
            tree=tree,
            stats=stats,
            strategy=run.strategy_name,
            problem_id=run.problem.id,
            reason=reason,
            candidates=pick.candidates,
        )

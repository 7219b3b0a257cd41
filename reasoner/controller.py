"""The controller: runs strategies in lockstep, batching every pending model request.

Each tick gathers the pending request of every live search (all problems of a batch), serves all
generation requests with the policy and all scoring requests with the PRM, then hands the results
back. It meters tokens, FLOPs and time per problem and enforces the hard caps. Every model call is
bounded: a tick is served in calls of at most the policy's `max_rows_per_call` samples and the
PRM's `max_chains_per_call` chains (reasoner.models.chunking), the time and node limits are checked
between calls, and a request whose samples the machine could not hold is refused before any is
drawn.
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from reasoner.aggregation import aggregate, answer_key, vote
from reasoner.grading.answers import extract_answer
from reasoner.models.base import Continuation, GenRequest, ScoreRequest
from reasoner.models.chunking import (
    DEFAULT_CHAINS_PER_CALL,
    DEFAULT_ROWS_PER_CALL,
    available_memory,
    calls_limit,
    generation_calls,
    samples_bytes,
    scoring_calls,
)
from reasoner.search import Expand, Pick, PRMUse, Rollout, Score, SearchContext, Strategy
from reasoner.tree import Node, StepTree
from reasoner.types import Problem, ReasonerError, Solution, Stats

# Node.meta key of a terminal node whose chain a cap cut (max_steps, max_step_tokens, the depth
# limit or the context) before the policy ended it: such a chain has no answer, and a search that
# picks one stops with reason "truncated"
CUT = "cut"


def is_cut(node: Node | None) -> bool:
    """Whether `node` ends a chain that a cap cut before the policy finished it."""
    return node is not None and bool(node.meta.get(CUT))


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
    seed: int = 0  # this search's own seed: its samples do not depend on other searches
    aggregation: str = "min"

    @property
    def done(self) -> bool:
        """Whether the search has ended (its `solution` is set)."""
        return self.solution is not None


# the handle of one search started with Controller.start, advanced by Controller.tick
RunHandle = _Run


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
        self.check_strategy(strategy)
        self.clear_caches()
        runs = [self.start(p, strategy, budget) for p in problems]
        live = [r for r in runs if r.solution is None]
        while live:
            live = self.tick(live)
        return [r.solution for r in runs]  # type: ignore[misc]

    # the incremental API (reasoner serve): start searches at any time, advance all live ones
    # together one tick at a time, cancel one between ticks
    def check_strategy(self, strategy: Strategy) -> None:
        """Refuse a strategy that needs a PRM when there is none."""
        if strategy.prm is PRMUse.REQUIRED and self.prm is None:
            raise ReasonerError(
                f"strategy {strategy.name!r} needs a PRM; pass prm=... (or 'embedded')"
            )

    def clear_caches(self) -> None:
        """Forget the models' cached prefix encodings, so later searches' metered tokens and
        seconds are their own, whatever ran before them."""
        for model in (self.policy, self.prm):
            # a user's object without the protocols' clear_cache has nothing of ours to forget
            if model is not None and hasattr(model, "clear_cache"):
                model.clear_cache()

    def start(
        self,
        problem: Problem,
        strategy: Strategy,
        budget: int,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        aggregation: str | None = None,
    ) -> RunHandle:
        """Start one search (its first request is pending; a problem that cannot be searched
        is done at once, its Solution saying why). seed, temperature and aggregation default
        to the controller's; a search's seed is its own, so its result does not depend on the
        searches it shares ticks with."""
        self.check_strategy(strategy)
        run = _Run(problem=problem)
        run.seed = self.seed if seed is None else seed
        run.aggregation = self.aggregation if aggregation is None else aggregation
        temp = None if temperature is None else check_temperature(temperature)
        self._start(run, strategy, budget, temp)
        return run

    def tick(self, runs: list[RunHandle]) -> list[RunHandle]:
        """Serve the pending request of every live run in `runs` (one lockstep round of model
        calls); return the runs still live after it."""
        live = [r for r in runs if r.solution is None]
        if live:
            self._serve(live)
        return [r for r in live if r.solution is None]

    def cancel(self, run: RunHandle, reason: str = "cancelled") -> None:
        """Stop a live search between ticks; its Solution says `reason` and holds no answer."""
        if run.solution is not None:
            return
        if run.search is not None:
            run.search.close()
        run.solution = Solution.failed(run.problem.id, run.strategy_name, reason)
        run.solution.reason = reason

    def _start(
        self, run: _Run, strategy: Strategy, budget: int, temperature: float | None = None
    ) -> None:
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
            aggregation=run.aggregation,
            has_prm=self.prm is not None,
            max_depth=self.limits.max_depth,
        )
        run.search = strategy.search(ctx)
        if temperature is not None:
            run.search = _with_temperature(run.search, temperature)
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

    def _over_limit(self, run: _Run, new_nodes: int = 0) -> str:
        """The limit a run is over ("node-limit", "time-limit"), "" if none; `new_nodes`: nodes it
        has been served but not yet given."""
        if len(run.tree) + new_nodes > self.limits.max_nodes:
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
            if r.solution is None:  # not stopped by a limit, or refused, while it was served
                self._advance(r, results[id(r)])

    def _seed_for(self, run: _Run, node: Node) -> int:
        count = run.expansions.get(node.id, 0)
        run.expansions[node.id] = count + 1
        key = f"{run.seed}:{run.problem.id or run.problem.text}:{node.id}:{count}"
        return zlib.crc32(key.encode())

    def _generation_requests(self, run: _Run) -> list[tuple[Node, GenRequest]]:
        """The GenRequests of a run's pending Expand / Rollout, one per node."""
        req = run.pending
        ks = req.k if isinstance(req.k, list) else [req.k] * len(req.nodes)
        if len(ks) != len(req.nodes):
            raise ReasonerError("a request's k list must have one entry per node")
        temp = self.temperature
        if req.temperature is not None:
            temp = check_temperature(
                req.temperature, f"strategy {run.strategy_name!r}: temperature"
            )
        out = []
        for node, k in zip(req.nodes, ks):
            if k < 1:
                raise ReasonerError(f"requested {k} samples; k must be >= 1")
            mode = "end" if isinstance(req, Rollout) else "step"
            remaining = max(1, self.limits.max_depth - node.depth)
            prefix = run.tree.prefix_ids(node)
            out.append(
                (node, GenRequest(prefix, k, self._seed_for(run, node), mode, temp, remaining))
            )
        return out

    def _too_large(self, run: _Run, requests: list[GenRequest]) -> str:
        """Why the machine could not hold a run's requested samples ("" when it can)."""
        need = samples_bytes(requests, self.policy.step_format, self.policy.max_context)
        if need < 2**30:  # below 1 GiB: never worth asking the OS
            return ""
        free = available_memory()
        if free is None or need <= free:
            return ""
        samples = sum(r.k for r in requests)
        return (
            f"strategy {run.strategy_name!r} asked for {samples} samples at once; held in its "
            f"step tree they may take up to {need / 2**30:.1f} GiB (each up to its token cap), "
            f"more than the {free / 2**30:.1f} GiB this machine has free: lower the budget"
        )

    def _serve_generation(self, runs: list[_Run]) -> dict[int, Any]:
        """Serve every run's Expand / Rollout in bounded policy calls; stop a run that goes over
        a limit between calls (or that asked for more samples than memory holds)."""
        requests: list[GenRequest] = []
        owners: list[tuple[_Run, Node]] = []
        for run in runs:
            pairs = self._generation_requests(run)
            refused = self._too_large(run, [r for _, r in pairs])
            if refused:
                run.search.close()
                run.solution = Solution.failed(run.problem.id, run.strategy_name, refused)
                continue
            for node, request in pairs:
                requests.append(request)
                owners.append((run, node))
        max_rows = calls_limit(self.policy, "max_rows_per_call", DEFAULT_ROWS_PER_CALL)
        calls = generation_calls(requests, max_rows)
        last_call = {id(owners[i][0]): c for c, call in enumerate(calls) for i, _ in call}
        received: list[list[Continuation]] = [[] for _ in requests]
        new_nodes: dict[int, int] = {id(r): 0 for r in runs}
        stopped: dict[int, str] = {}
        for c, call in enumerate(calls):
            call = [(i, part) for i, part in call if id(owners[i][0]) not in stopped]
            if not call:
                continue
            t0 = time.perf_counter()
            outputs = self.policy.generate([part for _, part in call])
            elapsed = time.perf_counter() - t0
            total_tokens = sum(x.prompt_tokens + x.new_tokens for out in outputs for x in out) or 1
            for (i, _), conts in zip(call, outputs):
                run = owners[i][0]
                received[i].extend(conts)
                new_nodes[id(run)] += sum(len(cont.steps) for cont in conts)
                tokens = sum(cont.prompt_tokens + cont.new_tokens for cont in conts)
                run.stats.policy_tokens += tokens
                run.stats.policy_new_tokens += sum(cont.new_tokens for cont in conts)
                run.stats.seconds += elapsed * tokens / total_tokens
            for i, _ in call:  # a run with calls still to come stops here if over a limit
                run = owners[i][0]
                if last_call[id(run)] > c and id(run) not in stopped:
                    over = self._over_limit(run, new_nodes[id(run)])
                    if over:
                        stopped[id(run)] = over
        # the tree grows in request order, as one call would have grown it (node ids seed later
        # expansions); a stopped run keeps what it was served
        per_run: dict[int, list[list[Node]]] = {id(r): [] for r in runs}
        for (run, node), conts in zip(owners, received):
            per_run[id(run)].append([self._attach(run, node, cont) for cont in conts])
        for run in runs:
            run.stats.policy_calls += 1
            if id(run) in stopped:
                run.search.close()
                self._finish(run, self._fallback_pick(run, stopped[id(run)]))
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
            if not cont.finished:  # a cap (steps, step length, depth, context) ended it
                node.meta[CUT] = True
        if node.terminal and not node.meta.get(CUT):
            node.answer = extract_answer(self.policy.step_format.join_steps(tree.steps(node)))
        return node

    def _serve_scoring(self, runs: list[_Run]) -> dict[int, Any]:
        """Serve every run's Score in bounded PRM calls (chains already scored come from the
        tree); stop a run that goes over a limit between calls."""
        if self.prm is None:
            raise ReasonerError("a strategy asked for PRM scores but no PRM is configured")
        requests: list[ScoreRequest] = []
        owners: list[tuple[_Run, Node]] = []
        sizes: list[int] = []
        for run in runs:
            before = len(requests)
            for node in run.pending.nodes:
                path = run.tree.path(node)
                if path and all(n.prm_score is not None for n in path):
                    continue  # every step already scored: served from the cache
                requests.append(ScoreRequest(run.problem.text, [n.text for n in path]))
                owners.append((run, node))
            sizes.append(len(requests) - before)
        max_chains = calls_limit(self.prm, "max_chains_per_call", DEFAULT_CHAINS_PER_CALL)
        calls = scoring_calls(sizes, max_chains)
        last_call = {id(owners[j][0]): c for c, span in enumerate(calls) for j in span}
        stopped: dict[int, str] = {}
        for c, span in enumerate(calls):
            part = [j for j in span if id(owners[j][0]) not in stopped]
            if not part:
                continue
            t0 = time.perf_counter()
            scores, tokens = self.prm.score([requests[j] for j in part])
            elapsed = time.perf_counter() - t0
            lengths = [sum(len(s) for s in requests[j].steps) + 1 for j in part]
            total = sum(lengths)
            for j, values, length in zip(part, scores, lengths):
                run, node = owners[j]
                for n, v in zip(run.tree.path(node), values):
                    if n.prm_score is None:
                        n.prm_score = float(v)
                share = length / total
                run.stats.prm_tokens += int(round(tokens * share))
                run.stats.seconds += elapsed * share
            for j in part:  # a run with calls still to come stops here if over a limit
                run = owners[j][0]
                if last_call[id(run)] > c and id(run) not in stopped:
                    over = self._over_limit(run)
                    if over:
                        stopped[id(run)] = over
        out: dict[int, Any] = {}
        for run in runs:
            run.stats.prm_calls += 1
            if id(run) in stopped:
                run.search.close()
                self._finish(run, self._fallback_pick(run, stopped[id(run)]))
                continue
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
                key=lambda n: aggregate([p.prm_score for p in run.tree.path(n)], run.aggregation),
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
        reason = pick.reason
        if is_cut(node):  # a cut chain is never "finished" and its last number is no answer
            reason = "truncated"
        elif node is not None and answer is None and steps:
            answer = extract_answer(self.policy.step_format.join_steps(steps))
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


def _with_temperature(search: Any, temperature: float) -> Any:
    """The search, with `temperature` on every Expand / Rollout that does not set its own (a
    request's temperature, e.g. greedy's 0, still wins, as over the controller's default)."""
    result = None
    try:
        while True:
            request = search.send(result)
            if isinstance(request, (Expand, Rollout)) and request.temperature is None:
                request = dataclasses.replace(request, temperature=temperature)
            result = yield request
    except StopIteration as stop:
        return stop.value
    finally:
        search.close()

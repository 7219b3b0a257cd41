"""Search strategies on one step tree: pure logic against a scripted controller, then end to end.

The scripted controller (`Scripted`) serves a strategy's requests on a real StepTree with a fake
policy (deterministic steps, solutions end at a fixed depth) and a fake PRM (a fixed score per
node), so invariants can be pinned exactly. The end-to-end tests run the real controller with the
toy trained policy and the untrained tiny PRM from conftest.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from conftest import toy_problems

from reasoner import Reasoner, Solution
from reasoner.aggregation import aggregate, answer_key
from reasoner.registry import available_strategies, get_strategy
from reasoner.search import Expand, Rollout, Score, SearchContext
from reasoner.tree import StepTree
from reasoner.types import ReasonerError

NEW = ["greedy_step", "weighted_best_of_n", "beam", "dvts", "mcts"]


# ---- a scripted controller ---------------------------------------------------------------------
class Scripted:
    """Serves Expand / Rollout / Score on a StepTree like the controller, with fake models.

    Steps are unique token sequences of `step_len` tokens; a chain ends (terminal) at `depth`
    or at `max_depth`; its answer is the step index mod `answers`. PRM step scores are fixed
    pseudo-random numbers per node (or `score_fn(node)`). Every request is logged.
    """

    def __init__(
        self, depth=3, max_depth=12, step_len=5, answers=3, seed=0, score_fn=None, dup_every=0
    ):
        self.depth, self.max_depth, self.step_len = depth, max_depth, step_len
        self.answers, self.seed, self.score_fn, self.dup_every = answers, seed, score_fn, dup_every
        self.count = 0
        self.log: list = []

    def _step(self, tree, node, terminal_at=None):
        self.count += 1
        ident = self.count
        if self.dup_every and ident % self.dup_every == 0:
            ident -= 1  # repeat the previous sample's tokens exactly
        child = tree.add_child(
            node,
            text=f"step {ident}",
            token_ids=[ident] * self.step_len,
            logprob=-0.1 * (ident % 7) * self.step_len,
        )
        if child.depth >= min(terminal_at or self.depth, self.max_depth):
            child.terminal = True
            child.answer = str(ident % self.answers)
        return child

    def score_of(self, node):
        if self.score_fn is not None:
            return self.score_fn(node)
        return random.Random(f"{self.seed}:{node.text}:{node.depth}").random()

    def serve(self, tree, req):
        self.log.append(req)
        if isinstance(req, Score):
            out = []
            for node in req.nodes:
                for n in tree.path(node):
                    if n.prm_score is None:
                        n.prm_score = self.score_of(n)
                out.append([n.prm_score for n in tree.path(node)])
            return out
        ks = req.k if isinstance(req.k, list) else [req.k] * len(req.nodes)
        out = []
        for node, k in zip(req.nodes, ks):
            assert not node.terminal, "a strategy asked to extend a finished chain"
            kids = []
            for _ in range(k):
                child = self._step(tree, node)
                if isinstance(req, Rollout):
                    while not child.terminal:
                        child = self._step(tree, child)
                kids.append(child)
            out.append(kids)
        return out


def drive(strategy, budget=8, world=None, aggregation="min", tree=None):
    """Run a strategy's generator to its Pick; returns (pick, tree, world)."""
    world = world or Scripted()
    tree = tree or StepTree("problem", prompt_ids=[1, 2, 3], problem_id="p")
    ctx = SearchContext(
        tree=tree, budget=budget, aggregation=aggregation, max_depth=world.max_depth
    )
    gen = strategy.search(ctx)
    result = None
    try:
        while True:
            req = gen.send(result)
            result = world.serve(tree, req)
    except StopIteration as stop:
        return stop.value, tree, world


def make(name, **options):
    return get_strategy(name)(**options)


def chain_score(tree, node, how="min"):
    return aggregate([n.prm_score for n in tree.path(node)], how)


def generated_tokens(tree):
    return sum(len(n.token_ids) for n in tree.nodes)


# ---- registry and options ----------------------------------------------------------------------
def test_new_strategies_are_registered():
    assert set(NEW) <= set(available_strategies())


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("greedy_step", {"k": 0}, "'k' must be an integer >= 1"),
        ("beam", {"width": 0}, "'width' must be an integer >= 1"),
        ("beam", {"lookahead": -1}, "'lookahead' must be an integer >= 0"),
        ("dvts", {"final": "best"}, "unknown final 'best'; valid: score, weighted"),
        ("mcts", {"c_puct": -0.5}, "'c_puct' must be a number >= 0"),
        ("mcts", {"prior": "flat"}, "unknown prior 'flat'; valid: uniform, prm, policy"),
        ("mcts", {"leaf_value": "mc"}, "unknown leaf_value 'mc'; valid: prm, rollout"),
        ("mcts", {"final": "best"}, "unknown final 'best'; valid: visits, value, vote"),
        ("mcts", {"prior_temperature": 0}, "'prior_temperature' must be a number > 0"),
        ("mcts", {"parallel": 0}, "'parallel' must be an integer >= 1"),
        ("mcts", {"k": 2.5}, "'k' must be an integer >= 1"),
        ("mcts", {"widen": -1}, "'widen' must be a number >= 0"),
        ("beam", {"beam_width": 2}, r"unknown option\(s\) \['beam_width'\]; valid: \['lookahead'"),
    ],
)
def test_invalid_options_name_the_valid_values(name, options, message):
    with pytest.raises(ReasonerError, match=message):
        make(name, **options)


@pytest.mark.parametrize("name", ["beam", "dvts"])
def test_width_larger_than_budget_is_rejected(name):
    with pytest.raises(ReasonerError, match=r"width M=8 is larger than the budget N=4.*1 <= width"):
        drive(make(name, width=8), budget=4)


# ---- greedy_step -------------------------------------------------------------------------------
def test_greedy_step_keeps_the_best_candidate_each_step():
    pick, tree, world = drive(make("greedy_step"), budget=5)
    expands = [r for r in world.log if isinstance(r, Expand)]
    assert len(expands) == 3 and all(r.k == 5 for r in expands)  # k defaults to the budget
    node = pick.node
    assert node.terminal and node.depth == 3
    for n in tree.path(node):
        siblings = tree.children(n.parent)
        assert len(siblings) == 5
        assert chain_score(tree, n) == max(chain_score(tree, s) for s in siblings)
    assert pick.score == pytest.approx(chain_score(tree, node))
    pick, _, world = drive(make("greedy_step", k=2), budget=5)
    assert all(r.k == 2 for r in world.log if isinstance(r, Expand))


# ---- weighted best-of-N ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["min", "prod", "mean", "last"])
def test_weighted_best_of_n_sums_scores_per_answer(how):
    pick, tree, _ = drive(make("weighted_best_of_n"), budget=12, aggregation=how)
    leaves = tree.terminals()
    assert len(leaves) == 12
    totals: dict[str, float] = {}
    for leaf in leaves:
        key = answer_key(leaf.answer)
        totals[key] = totals.get(key, 0.0) + chain_score(tree, leaf, how)
    assert pick.candidates == pytest.approx(totals)
    assert sum(pick.candidates.values()) == pytest.approx(
        sum(chain_score(tree, x, how) for x in leaves)
    )
    top = max(totals, key=totals.get)
    assert answer_key(pick.node.answer) == top
    same = [x for x in leaves if answer_key(x.answer) == top]
    assert chain_score(tree, pick.node, how) == max(chain_score(tree, x, how) for x in same)
    assert pick.score == pytest.approx(totals[top] / sum(totals.values()))


def drive_on_fixed_leaves(strategy, leaves):
    """Drive a one-Rollout strategy on root leaves given as (text, answer, PRM score) triples.

    The Rollout is answered with those leaves (one step each); returns the Pick."""
    tree = StepTree("p", [1])
    scores = {}
    for text, answer, score in leaves:
        tree.add_child(tree.root, text=text, token_ids=[5], terminal=True, answer=answer)
        scores[text] = score

    class Fixed(Scripted):
        def serve(self, tree, req):
            if isinstance(req, Rollout):
                return [tree.children(tree.root)]
            return super().serve(tree, req)

    world = Fixed(score_fn=lambda n: scores[n.text])
    pick, _, _ = drive(strategy, budget=len(leaves), world=world, tree=tree)
    return pick


def test_weighted_vote_can_overrule_the_single_best_chain():
    # answer "0" has the single best chain (0.9); answer "1" has two chains of 0.6 each: 1.2 > 0.9
    leaves = [("a", "0", 0.9), ("b", "1", 0.6), ("c", "1", 0.6)]
    pick = drive_on_fixed_leaves(make("weighted_best_of_n"), leaves)
    assert pick.node.answer == "1" and pick.candidates == pytest.approx({"0": 0.9, "1": 1.2})


def test_best_of_n_never_picks_an_unanswered_chain_over_an_answered_one():
    # "a" scores highest but was cut before an answer: it can never be right, so "b" wins
    leaves = [("a", None, 0.9), ("b", "1", 0.5), ("c", "2", 0.4)]
    pick = drive_on_fixed_leaves(make("best_of_n"), leaves)
    assert pick.node.text == "b" and pick.score == pytest.approx(0.5)


# ---- beam --------------------------------------------------------------------------------------
def rounds(tree, key):
    by_round: dict[int, list] = {}
    for n in tree.nodes:
        if key in n.meta:
            by_round.setdefault(n.meta[key]["round"], []).append(n)
    return [by_round[r] for r in sorted(by_round)]


@pytest.mark.parametrize(("budget", "width"), [(8, 4), (6, 4), (4, 1), (5, 5)])
def test_beam_rounds_carry_n_candidates_and_keep_the_best(budget, width):
    pick, tree, world = drive(make("beam", width=width), budget=budget, world=Scripted(depth=4))
    all_rounds = rounds(tree, "beam")
    assert len(all_rounds) == 4
    for cands in all_rounds:
        assert len(cands) == budget  # N candidates every round
        kept = [c for c in cands if c.meta["beam"]["kept"]]
        dropped = [c for c in cands if not c.meta["beam"]["kept"] and not c.terminal]
        if not all(c.terminal for c in cands):
            assert len(kept) == max(1, budget // width)
            assert min(c.meta["beam"]["score"] for c in kept) >= max(
                (c.meta["beam"]["score"] for c in dropped), default=-1
            )
            for c in cands:
                assert c.meta["beam"]["score"] == pytest.approx(chain_score(tree, c))
    # every round expands exactly the previous round's kept beams
    for prev, cur in zip(all_rounds, all_rounds[1:]):
        assert {c.parent for c in cur} == {c.id for c in prev if c.meta["beam"]["kept"]}
    finished = all_rounds[-1]
    assert pick.node in finished and pick.reason == "finished"
    assert pick.score == max(chain_score(tree, c) for c in finished)
    # budget meaning: N candidates per round over the D steps = N solutions' worth of steps
    assert generated_tokens(tree) == budget * 4 * world.step_len


def test_beam_sets_aside_finished_beams_and_stops_at_n():
    # chains may end at depth 2 or 3: finished candidates leave the beam, the search stops at N
    def world_factory():
        w = Scripted(depth=3)
        base = w._step

        def step(tree, node, terminal_at=None):
            return base(tree, node, terminal_at=2 if (w.count % 3 == 0) else None)

        w._step = step
        return w

    pick, tree, world = drive(make("beam", width=2), budget=6, world=world_factory())
    all_rounds = rounds(tree, "beam")
    finished = [c for cands in all_rounds for c in cands if c.terminal]
    assert len(finished) >= 6
    for cands in all_rounds:
        assert not any(c.terminal and c.meta["beam"]["kept"] for c in cands)
    assert pick.node.terminal
    assert chain_score(tree, pick.node) == max(chain_score(tree, c) for c in finished)


def test_beam_lookahead_ranks_by_the_greedy_continuation():
    pick, tree, world = drive(make("beam", width=2, lookahead=1), budget=4, world=Scripted(depth=3))
    look = [r for r in world.log if isinstance(r, Expand) and r.temperature == 0.0]
    assert look and all(r.k == 1 for r in look)
    for cands in rounds(tree, "beam"):
        for c in cands:
            if c.terminal:
                assert c.meta["beam"]["score"] == pytest.approx(chain_score(tree, c))
            else:
                [tip] = [x for x in tree.children(c) if x.meta.get("lookahead")]
                assert c.meta["beam"]["score"] == pytest.approx(chain_score(tree, tip))
    assert not pick.node.meta.get("lookahead")
    assert not any(n.meta.get("lookahead") for n in tree.path(pick.node))


# ---- DVTS --------------------------------------------------------------------------------------
@pytest.mark.parametrize("final", ["score", "weighted"])
def test_dvts_runs_independent_subtrees_in_one_request(final):
    pick, tree, world = drive(
        make("dvts", width=4, final=final), budget=12, world=Scripted(depth=3)
    )
    expands = [r for r in world.log if isinstance(r, Expand)]
    assert [len(r.nodes) for r in expands] == [1, 3, 3]  # root once, then all 3 subtrees together
    assert expands[0].k == 12 and all(r.k == [4, 4, 4] for r in expands[1:])
    assert sum(isinstance(r, Score) for r in world.log) == 3
    finals = []
    for s in range(3):
        cands = [n for n in tree.nodes if n.meta.get("dvts", {}).get("subtree") == s]
        assert len(cands) == 12  # 4 per round, 3 rounds
        for rnd in range(3):
            group = [c for c in cands if c.meta["dvts"]["round"] == rnd]
            [kept] = [c for c in group if c.meta["dvts"]["kept"]]
            assert chain_score(tree, kept) == max(chain_score(tree, c) for c in group)
            if rnd < 2:
                assert all(c.parent == kept.id for c in cands if c.meta["dvts"]["round"] == rnd + 1)
            else:
                finals.append(kept)
    assert pick.node in finals
    if final == "score":
        assert chain_score(tree, pick.node) == max(chain_score(tree, f) for f in finals)
    else:
        totals: dict[str, float] = {}
        for f in finals:
            totals[answer_key(f.answer)] = totals.get(answer_key(f.answer), 0) + chain_score(
                tree, f
            )
        assert pick.candidates == pytest.approx(totals)
        assert answer_key(pick.node.answer) == max(totals, key=totals.get)


def test_dvts_spreads_a_remainder_over_subtrees():
    pick, tree, world = drive(make("dvts", width=4), budget=10, world=Scripted(depth=2))
    expands = [r for r in world.log if isinstance(r, Expand)]
    assert expands[0].k == 10 and expands[1].k == [5, 5]
    assert pick.node.terminal


# ---- MCTS --------------------------------------------------------------------------------------
def check_mcts_statistics(tree):
    """visits/value_sum of every search node equal its own evaluation plus its children's."""
    searched = [n for n in tree.nodes if "mcts_value" in n.meta]
    assert searched
    for n in [tree.root, *searched]:
        kids = [c for c in tree.children(n) if "mcts_value" in c.meta]
        own_visits = 0 if n is tree.root else 1
        own_value = n.meta.get("mcts_value", 0.0)
        if n.terminal:
            assert not kids
            assert n.value_sum == pytest.approx(n.visits * own_value)
        else:
            assert n.visits == own_visits + sum(c.visits for c in kids)
            assert n.value_sum == pytest.approx(own_value + sum(c.value_sum for c in kids))
        if kids:
            assert sum(c.prior for c in kids) == pytest.approx(1.0)
    return searched


@pytest.mark.parametrize("widen", [0.0, 1.5])
@pytest.mark.parametrize("leaf_value", ["prm", "rollout"])
@pytest.mark.parametrize("final", ["visits", "value", "vote"])
def test_mcts_backup_keeps_visits_and_values_consistent(leaf_value, final, widen):
    world = Scripted(depth=4, dup_every=5)
    strategy = make("mcts", leaf_value=leaf_value, final=final, k=3, parallel=3, widen=widen)
    pick, tree, world = drive(strategy, budget=16, world=world)
    searched = check_mcts_statistics(tree)
    # values are aggregated PRM scores of the chain (prm) or of the rolled-out terminal (rollout)
    for n in searched:
        if leaf_value == "prm" or n.terminal:
            assert n.meta["mcts_value"] == pytest.approx(chain_score(tree, n))
        else:
            end = tree[n.meta["mcts_rollout"]]
            assert end.terminal and n in tree.path(end)
            assert all(x.meta.get("rollout") for x in tree.path(end)[n.depth :])
            assert n.meta["mcts_value"] == pytest.approx(chain_score(tree, end))
    assert any(n.meta.get("duplicate_of") for n in tree.nodes)
    assert not any("mcts_value" in n.meta for n in tree.nodes if n.meta.get("duplicate_of"))
    info = tree.root.meta["mcts"]
    if leaf_value == "prm" and not widen:  # finished chains were re-selected and backed up
        assert info["terminal_backups"] > 0
    assert pick.node.terminal and pick.reason == "finished"
    if final == "visits":
        node = tree.root
        for n in tree.path(pick.node):
            kids = [c for c in tree.children(node) if "mcts_value" in c.meta]
            if not kids:
                break
            assert n.visits == max(c.visits for c in kids)
            node = n


def test_mcts_batches_several_leaves_per_tick_with_virtual_loss():
    # without widening every tick is one Expand then one Score (a widening tick may re-score)
    strategy = make("mcts", k=4, parallel=4, widen=0.0, final="visits")
    pick, tree, world = drive(strategy, budget=32, world=Scripted(depth=5))
    expands = [r for r in world.log if isinstance(r, Expand)]
    assert len(expands[0].nodes) == 1  # only the root exists at first
    assert max(len(r.nodes) for r in expands) == 4
    for r in expands:
        assert len({n.id for n in r.nodes}) == len(r.nodes)  # never the same leaf twice
    scores = [r for r in world.log if isinstance(r, Score)]
    assert len(scores) == len(expands)  # one PRM call per tick
    check_mcts_statistics(tree)


@pytest.mark.parametrize("widen", [0.0, 1.0])
@pytest.mark.parametrize("budget", [2, 8, 32])
@pytest.mark.parametrize("leaf_value", ["prm", "rollout"])
def test_mcts_spends_about_n_solutions_worth_of_tokens(budget, leaf_value, widen):
    world = Scripted(depth=4, step_len=5)
    strategy = make("mcts", k=4, parallel=4, leaf_value=leaf_value, widen=widen)
    pick, tree, world = drive(strategy, budget=budget, world=world)
    solution = 4 * 5  # every complete chain is 4 steps of 5 tokens here
    info = tree.root.meta["mcts"]
    assert info["solution_tokens"] == solution
    spent = info["tokens_generated"]
    one_expansion = 4 * (solution if leaf_value == "rollout" else 5)
    assert budget * solution <= spent < budget * solution + one_expansion + solution
    assert generated_tokens(tree) <= spent + solution  # + at most one greedy completion


@pytest.mark.parametrize("leaf_value", ["prm", "rollout"])
def test_mcts_widening_spends_the_budget_of_an_exhausted_tree(leaf_value):
    # every second sample repeats the one before: k = 4 samples give 2 distinct children, so the
    # tree of depth 4 is exhausted after 15 expansions (300 of the 640 tokens N = 32 allows)
    def run(widen):
        world = Scripted(depth=4, step_len=5, dup_every=2)
        strategy = make("mcts", k=4, parallel=4, leaf_value=leaf_value, widen=widen)
        return drive(strategy, budget=32, world=world)

    _, tree, _ = run(0.0)
    info = tree.root.meta["mcts"]
    assert info["tokens_generated"] < info["token_budget"]  # the old rule stops short
    assert not any("mcts_widened" in n.meta for n in tree.nodes)
    pick, tree, _ = run(1.0)
    info = tree.root.meta["mcts"]
    assert info["token_budget"] <= info["tokens_generated"] < info["token_budget"] + 4 * 20 + 20
    widened = [n for n in tree.nodes if n.meta.get("mcts_widened")]
    assert widened and pick.node.terminal and pick.reason == "finished"
    check_mcts_statistics(tree)  # visits, values and priors stay consistent after widening
    for n in widened:
        kids = [c for c in tree.children(n) if "mcts_value" in c.meta]
        assert len(kids) > 2  # new actions joined the search
        assert len({tuple(c.token_ids) for c in kids}) == len(kids)  # repeats stay out
        expansions = 1 + n.meta["mcts_widened"]
        sampled = [c for c in tree.children(n) if not c.meta.get("rollout")]
        assert len(sampled) == 4 * expansions  # k samples per expansion (duplicates included)


def test_mcts_priors_follow_the_option():
    for prior in ["uniform", "prm", "policy"]:
        _, tree, _ = drive(make("mcts", prior=prior, k=3, prior_temperature=0.5), budget=4)
        kids = [c for c in tree.children(tree.root) if "mcts_value" in c.meta]
        if prior == "uniform":
            logits = [0.0] * 3
        elif prior == "prm":
            logits = [c.prm_score / 0.5 for c in kids]
        else:
            logits = [c.logprob / len(c.token_ids) / 0.5 for c in kids]
        z = [math.exp(x) for x in logits]
        assert [c.prior for c in kids] == pytest.approx([x / sum(z) for x in z])


def test_mcts_exploits_a_good_branch():
    # one first step leads to chains the PRM likes (0.9), the others to 0.2: with a PRM value the
    # search must spend most visits under the good step and return a chain through it
    def score_fn(node):
        return 0.9 if node.text == "step 2" or node.meta.get("good") else 0.2

    class Marked(Scripted):
        def _step(self, tree, node, terminal_at=None):
            child = super()._step(tree, node, terminal_at)
            if node.text == "step 2" or node.meta.get("good"):
                child.meta["good"] = True
            return child

    pick, tree, _ = drive(make("mcts", k=3, parallel=2), budget=24, world=Marked(score_fn=score_fn))
    kids = [c for c in tree.children(tree.root) if "mcts_value" in c.meta]
    good = next(c for c in kids if c.text == "step 2")
    assert (
        good.visits == max(c.visits for c in kids) and good.visits > sum(c.visits for c in kids) / 2
    )
    assert tree.path(pick.node)[0] is good


def test_strategies_are_deterministic_on_the_scripted_controller():
    for name in NEW:
        a, ta, _ = drive(make(name), budget=8)
        b, tb, _ = drive(make(name), budget=8)
        assert ta.to_dict() == tb.to_dict() and a.node.id == b.node.id


# ---- end to end with tiny real models ----------------------------------------------------------
@pytest.fixture(scope="module")
def models(trained_ckpt, tiny_ckpt):
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.models.hf_prm import HFPRM

    return HFPolicy(trained_ckpt), HFPRM(tiny_ckpt)


E2E = [
    ("greedy_step", {}),
    ("weighted_best_of_n", {}),
    ("beam", {"width": 2}),
    ("beam", {"width": 2, "lookahead": 1}),
    ("dvts", {"width": 2, "final": "weighted"}),
    ("mcts", {"k": 2, "parallel": 2}),
    ("mcts", {"k": 2, "leaf_value": "rollout", "final": "vote", "prior": "policy"}),
    ("mcts", {"k": 2, "widen": 1.0, "final": "value"}),
]


@pytest.fixture(scope="module")
def e2e(models):
    policy, prm = models
    problem = toy_problems(1, seed=5)[0]
    out = {}
    for name, options in E2E:
        r = Reasoner(
            strategy=name, budget=4, policy=policy, prm=prm, seed=1, strategy_options=options
        )
        out[(name, json.dumps(options))] = r.solve(problem)
    return out


@pytest.mark.parametrize(("name", "options"), E2E)
def test_end_to_end_finished_solution(e2e, models, name, options):
    sol = e2e[(name, json.dumps(options))]
    assert isinstance(sol, Solution) and sol.reason == "finished"
    assert sol.answer is not None and sol.steps
    assert len(sol.step_scores) == len(sol.steps) and sol.stats.prm_tokens > 0
    assert sol.stats.policy_new_tokens > 0 and sol.stats.prm_calls >= 1
    again = Solution.from_dict(json.loads(sol.to_json()))
    assert again.steps == sol.steps and len(again.tree) == len(sol.tree)


def test_end_to_end_invariants(e2e):
    beam = e2e[("beam", json.dumps({"width": 2}))]
    for cands in rounds(beam.tree, "beam"):
        assert len(cands) == 4  # N candidates per round
        live = [c for c in cands if not c.terminal]
        kept = [c.meta["beam"]["score"] for c in live if c.meta["beam"]["kept"]]
        dropped = [c.meta["beam"]["score"] for c in live if not c.meta["beam"]["kept"]]
        assert len(kept) == min(2, len(live))
        if kept and dropped:
            assert min(kept) >= max(dropped)
    wbon = e2e[("weighted_best_of_n", "{}")]
    leaves = [x for x in wbon.tree.terminals() if answer_key(x.answer) is not None]
    assert sum(wbon.candidates.values()) == pytest.approx(
        sum(chain_score(wbon.tree, x) for x in leaves)
    )
    for options in ({"k": 2, "parallel": 2}, E2E[-1][1]):
        sol = e2e[("mcts", json.dumps(options))]
        check_mcts_statistics(sol.tree)
        assert sol.tree.root.visits > 0


def shape(node):
    flags = {k: v.get("kept") for k, v in node.meta.items() if isinstance(v, dict)}
    return (node.parent, node.token_ids, node.terminal, node.answer, node.visits, flags)


def test_end_to_end_deterministic_and_batch_equals_sequential(models):
    policy, prm = models
    problems = toy_problems(2, seed=9)
    for name, options in [("beam", {"width": 2}), ("dvts", {"width": 2}), ("mcts", {"k": 2})]:
        r = Reasoner(
            strategy=name, budget=4, policy=policy, prm=prm, seed=3, strategy_options=options
        )
        batch = r.solve_batch(problems)
        single = [r.solve(p) for p in problems]
        assert [s.steps for s in batch] == [s.steps for s in single], name
        for b, s in zip(batch, single):  # same tree; scores equal up to batched float rounding
            assert [shape(n) for n in b.tree.nodes] == [shape(n) for n in s.tree.nodes], name
            assert [n.prm_score for n in b.tree.nodes] == pytest.approx(
                [n.prm_score for n in s.tree.nodes], abs=1e-5
            )


def test_end_to_end_width_check_and_no_prm(models):
    policy, prm = models
    with pytest.raises(ReasonerError, match="width M=4 is larger than the budget N=2"):
        Reasoner(strategy="beam", budget=2, policy=policy, prm=prm).solve("What is 2 + 2?")
    with pytest.raises(ReasonerError, match="needs a PRM"):
        Reasoner(strategy="mcts", budget=2, policy=policy, prm=None).solve("What is 2 + 2?")
    with pytest.raises(ReasonerError, match="aggregation"):
        Reasoner(strategy="beam", aggregation="median", policy=policy, prm=prm)
    sol = Reasoner(strategy="weighted_best_of_n", budget=3, policy=policy, prm=None).solve(
        toy_problems(1)[0]
    )
    voters = [x for x in sol.tree.terminals() if answer_key(x.answer) is not None]
    assert sol.stats.prm_tokens == 0 and sum(sol.candidates.values()) == len(voters)  # majority

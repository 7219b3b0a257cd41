"""particle_filter, adaptive_majority and adaptive_weighted on the scripted fake world, then end to
end with the tiny real checkpoints; property tests for resampling and the answer posterior."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
import tomllib
from conftest import toy_problems
from hypothesis import given, settings
from hypothesis import strategies as st
from test_strategies import Scripted, drive, make

from reasoner import Reasoner, Solution
from reasoner.aggregation import answer_key
from reasoner.registry import available_strategies
from reasoner.search import (
    Expand,
    PRMUse,
    Rollout,
    Score,
    SearchContext,
    majority_pick,
    weighted_pick,
)
from reasoner.tree import StepTree
from reasoner.types import ReasonerError
from strategies.adaptive_majority import AdaptiveMajority, AdaptiveWeighted
from strategies.answer_posterior import beats_probability, beta_cdf, leader_confidence
from strategies.particle_filter import Particle, ParticleFilter, round_rng
from strategies.resampling import (
    effective_sample_size,
    log_sum_exp,
    multinomial,
    normalized,
    systematic,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["particle_filter", "adaptive_majority", "adaptive_weighted"]


def early_finishing_world(**kwargs) -> Scripted:
    """Chains end at depth 2 (every third step) or at depth 4: particles finish in different rounds."""
    world = Scripted(depth=4, **kwargs)
    base = world._step

    def step(tree, node, terminal_at=None):
        return base(tree, node, terminal_at=2 if world.count % 3 == 0 else None)

    world._step = step
    return world


def rounds_of(tree):
    return tree.root.meta["particle_filter"]["rounds"]


# ---- registration and options ------------------------------------------------------------------
def test_registered_and_declared_as_entry_points():
    # the classes register themselves by name; the installed CLI finds them through the entry
    # points declared here (an editable install lists them after `pip install -e .`)
    assert set(NAMES) <= set(available_strategies())
    assert (ParticleFilter.name, AdaptiveMajority.name, AdaptiveWeighted.name) == tuple(NAMES)
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert table["reasoner.strategies"]["particle_filter"] == (
        "strategies.particle_filter:ParticleFilter"
    )
    assert table["reasoner.strategies"]["adaptive_majority"] == (
        "strategies.adaptive_majority:AdaptiveMajority"
    )
    assert table["reasoner.strategies"]["adaptive_weighted"] == (
        "strategies.adaptive_majority:AdaptiveWeighted"
    )
    assert make("particle_filter").prm is PRMUse.REQUIRED
    assert make("adaptive_majority").prm is PRMUse.UNUSED
    assert make("adaptive_weighted").prm is PRMUse.OPTIONAL
    assert not any(make(name).replayable for name in NAMES)  # rounds are separate Rollouts


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("particle_filter", {"weight_temperature": 0}, "'weight_temperature' must be a number > 0"),
        ("particle_filter", {"weight_temperature": -1.0}, "'weight_temperature' must be a number"),
        ("particle_filter", {"ess_threshold": 0}, "'ess_threshold' must be a number > 0"),
        ("particle_filter", {"ess_threshold": 1.5}, r"'ess_threshold' must be in \(0, 1\]"),
        ("particle_filter", {"ess_threshold": "half"}, "'ess_threshold' must be a number"),
        ("particle_filter", {"resampling": "stratified"}, "valid: systematic, multinomial"),
        ("particle_filter", {"final": "visits"}, "unknown final 'visits'; valid: vote, best"),
        ("adaptive_majority", {"round_size": 0}, "'round_size' must be an integer >= 1"),
        ("adaptive_majority", {"round_size": 2.0}, "'round_size' must be an integer >= 1"),
        ("adaptive_majority", {"confidence": 0.5}, "'confidence' must be a number > 0.5"),
        ("adaptive_weighted", {"confidence": 1.0}, r"'confidence' must be in \(0.5, 1\)"),
        ("adaptive_weighted", {"confidence": 1.2}, r"'confidence' must be in \(0.5, 1\)"),
        ("adaptive_weighted", {"rounds": 2}, r"unknown option\(s\) \['rounds'\]"),
    ],
)
def test_bad_options_fail_at_reasoner_construction(name, options, message):
    with pytest.raises(ReasonerError, match=message):
        make(name, **options)
    # Reasoner checks options (and the budget) before it loads any model
    with pytest.raises(ReasonerError, match=message):
        Reasoner(strategy=name, budget=8, policy=None, strategy_options=options)


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted"])
def test_round_size_larger_than_the_budget_is_a_budget_error(name):
    message = r"round_size b=8 is larger than the budget N=4; valid: 1 <= round_size <= budget"
    with pytest.raises(ReasonerError, match=message):
        Reasoner(strategy=name, budget=4, policy=None, strategy_options={"round_size": 8})
    with pytest.raises(ReasonerError, match=message):
        drive(make(name, round_size=8), budget=4)
    make(name, round_size=4).check_budget(4)  # b = N is fine


# ---- particle filter ---------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [1, 5, 8])
def test_particle_filter_spends_n_chains_one_expand_and_one_score_per_round(budget):
    pick, tree, world = drive(make("particle_filter"), budget=budget, world=Scripted(depth=4))
    kinds = [type(r) for r in world.log]
    assert kinds == [Expand, Score] * 4  # one batched Expand and one Score per round
    first = world.log[0]
    assert [n.id for n in first.nodes] == [0] and first.k == [budget]  # the prompt prefilled once
    for req in world.log[::2]:  # one request per distinct tip, one sample per particle on it
        assert len({n.id for n in req.nodes}) == len(req.nodes) and sum(req.k) == budget
    assert sum(len(n.token_ids) for n in tree.nodes) == budget * 4 * world.step_len
    assert len(tree.terminals()) == budget
    assert pick.node.terminal and pick.reason == "finished"


@pytest.mark.parametrize("scheme", ["systematic", "multinomial"])
@pytest.mark.parametrize("final", ["vote", "best"])
def test_finished_particles_are_never_resampled_away_nor_extended(scheme, final):
    # resample every round (tau = 1) with sharp weights: live particles are copied and dropped,
    # finished ones must keep their slot, their node and their weight to the end
    strategy = make(
        "particle_filter",
        ess_threshold=1.0,
        weight_temperature=0.05,
        resampling=scheme,
        final=final,
    )
    pick, tree, world = drive(strategy, budget=12, world=early_finishing_world())
    history = rounds_of(tree)
    assert any(entry["resampled"] for entry in history)
    finished: dict[int, tuple[int, float]] = {}  # slot -> (tip id, log-weight) when it finished
    for entry in history:
        for slot, (tip, weight) in enumerate(zip(entry["particles"], entry["log_weights"])):
            if slot in finished:
                assert (tip, weight) == finished[slot]
            elif tree[tip].terminal:
                finished[slot] = (tip, weight)
    assert len(finished) == 12 and len({tip for tip, _ in finished.values()}) == 12
    early = [tip for tip, _ in finished.values() if tree[tip].depth == 2]
    assert early  # some particles finished early, survived every later resampling
    # never extended: the scripted world asserts it on every Expand; no terminal has children
    assert not any(n.children for n in tree.terminals())
    # each round extends exactly the live particles of the previous round
    for before, req in zip([[0] * 12] + [e["particles"] for e in history], world.log[::2]):
        live = Counter(t for t in before if not tree[t].terminal or t == 0)
        assert dict(zip([n.id for n in req.nodes], req.k)) == dict(live)


@pytest.mark.parametrize("tau", [0.3, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("temperature", [0.1, 0.3, 1.0])
def test_resampling_happens_exactly_when_ess_is_below_the_threshold(tau, temperature):
    strategy = make("particle_filter", ess_threshold=tau, weight_temperature=temperature)
    _, tree, _ = drive(strategy, budget=16, world=early_finishing_world(seed=3))
    for entry in rounds_of(tree):
        live = [t for t in entry["particles"] if not tree[t].terminal]
        assert entry["live"] == len(live)
        if live:
            assert entry["resampled"] == (entry["ess"] < tau * len(live))


def test_resampling_both_sides_of_the_threshold():
    # equal step scores: equal weights, ESS = |L|: never resampled, even at tau = 1
    flat = Scripted(depth=4, score_fn=lambda node: 0.5)
    _, tree, _ = drive(make("particle_filter", ess_threshold=1.0), budget=8, world=flat)
    assert [e["resampled"] for e in rounds_of(tree)] == [False] * 4
    # one sharp winner each round: ESS near 1 < tau * |L|: resampled every live round
    sharp = Scripted(depth=4, score_fn=lambda node: 1.0 if node.id % 8 == 1 else 0.0)
    _, tree, _ = drive(
        make("particle_filter", ess_threshold=0.5, weight_temperature=0.05), budget=8, world=sharp
    )
    history = rounds_of(tree)
    assert [e["resampled"] for e in history[:3]] == [True] * 3
    for entry in history[:3]:  # after a resampling the live particles share the weight equally
        assert len(set(entry["log_weights"])) == 1
    # a tiny threshold never resamples: N independent chains, like N samples
    _, tree, _ = drive(make("particle_filter", ess_threshold=1e-6), budget=8, world=Scripted())
    assert not any(e["resampled"] for e in rounds_of(tree))
    assert len(tree.children(tree.root)) == 8
    assert all(len(n.children) <= 1 for n in tree.nodes[1:])


def test_resample_keeps_finished_particles_and_the_live_mass():
    tree = StepTree("p", [1], problem_id="p")
    done = tree.add_child(tree.root, text="done", token_ids=[7], terminal=True, answer="1")
    tips = [tree.add_child(tree.root, text=f"s{i}", token_ids=[i + 10]) for i in range(5)]
    particles = [Particle(tips[0], 0.1), Particle(done, 2.0)] + [
        Particle(t, w) for t, w in zip(tips[1:], [3.0, -1.0, 0.5, 4.0])
    ]
    live_logs = [0.1, 3.0, -1.0, 0.5, 4.0]
    out, entry = ParticleFilter(ess_threshold=1.0)._resample(tree, particles, 0)
    assert entry["resampled"] and entry["live"] == 5
    assert entry["ess"] == pytest.approx(effective_sample_size(normalized(live_logs)))
    assert out[1] is particles[1] and out[1].log_weight == 2.0  # the finished one, untouched
    drawn = [p for i, p in enumerate(out) if i != 1]
    assert len(drawn) == 5 and all(p.tip in tips for p in drawn)
    assert log_sum_exp([p.log_weight for p in drawn]) == pytest.approx(log_sum_exp(live_logs))
    kept, entry = ParticleFilter(ess_threshold=0.01)._resample(tree, particles, 0)
    assert not entry["resampled"] and kept == particles


@pytest.mark.parametrize("final", ["vote", "best"])
def test_particle_filter_final_pick(final):
    pick, tree, _ = drive(make("particle_filter", final=final), budget=12, world=Scripted(depth=3))
    last = rounds_of(tree)[-1]
    weights = normalized(last["log_weights"])
    tips = [tree[t] for t in last["particles"]]
    assert all(t.terminal for t in tips)
    if final == "vote":
        totals: dict[str, float] = {}
        for tip, w in zip(tips, weights):
            totals[answer_key(tip.answer)] = totals.get(answer_key(tip.answer), 0.0) + w
        assert pick.candidates == pytest.approx(totals)
        top = max(totals, key=totals.get)
        assert answer_key(pick.node.answer) == top
        same = [w for tip, w in zip(tips, weights) if answer_key(tip.answer) == top]
        assert weights[tips.index(pick.node)] == max(same)
        assert pick.score == pytest.approx(totals[top] / sum(totals.values()))
    else:
        assert pick.node is tips[max(range(len(tips)), key=lambda i: (weights[i], -i))]
        assert pick.score == pytest.approx(max(weights))


def test_particle_weights_are_summed_step_scores_over_temperature():
    strategy = make("particle_filter", ess_threshold=1e-6, weight_temperature=0.5)
    _, tree, _ = drive(strategy, budget=4, world=Scripted(depth=3))
    for tip_id, log_weight in zip(
        rounds_of(tree)[-1]["particles"], rounds_of(tree)[-1]["log_weights"]
    ):
        steps = tree.path(tip_id)
        assert log_weight == pytest.approx(sum(n.prm_score for n in steps) / 0.5)
        assert tree[tip_id].meta["particle_filter"]["log_weight"] == pytest.approx(log_weight)


def test_resampling_rng_depends_on_problem_round_and_tips():
    tree = StepTree("p", [1], problem_id="p")
    a = tree.add_child(tree.root, text="a", token_ids=[5, 6])
    b = tree.add_child(tree.root, text="b", token_ids=[5, 7])
    draw = [round_rng(tree, 0, [a]).random() for _ in range(2)]
    assert draw[0] == draw[1]
    assert round_rng(tree, 1, [a]).random() != draw[0]
    assert round_rng(tree, 0, [b]).random() != draw[0]
    other = StepTree("p", [1], problem_id="q")
    assert round_rng(other, 0, [a]).random() != draw[0]


# ---- adaptive majority -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted"])
def test_adaptive_stops_early_on_a_unanimous_stream(name):
    world = Scripted(depth=3, answers=1, score_fn=lambda node: 1.0)  # every sample answers "0"
    pick, tree, world = drive(make(name), budget=64, world=world)
    rollouts = [r for r in world.log if isinstance(r, Rollout)]
    assert [r.k for r in rollouts] == [4]  # one round of b = 4: 1 - 2^-5 = 0.969 >= 0.95
    assert len(tree.terminals()) == 4 and pick.node.answer == "0"
    summary = tree.root.meta["adaptive"]
    assert summary["stop"] == "confident"
    assert summary["rounds"][0]["confidence"] == pytest.approx(1 - 2**-5)
    # round size 1: three unanimous samples give 0.9375 < 0.95, the fourth 0.969
    world = Scripted(depth=3, answers=1, score_fn=lambda node: 1.0)
    pick, tree, world = drive(make(name, round_size=1), budget=64, world=world)
    assert [r.k for r in world.log if isinstance(r, Rollout)] == [1, 1, 1, 1]


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted"])
@pytest.mark.parametrize(("budget", "round_size"), [(1, 1), (10, 4), (16, 3), (7, 7), (64, 4)])
def test_adaptive_never_exceeds_n_samples(name, budget, round_size):
    world = Scripted(depth=2, answers=5)  # answers spread over 5 values: never settled early
    pick, tree, world = drive(make(name, round_size=round_size), budget=budget, world=world)
    ks = [r.k for r in world.log if isinstance(r, Rollout)]
    assert sum(ks) == budget and all(1 <= k <= round_size for k in ks)
    assert ks == [round_size] * (budget // round_size) + (
        [budget % round_size] if budget % round_size else []
    )
    assert len(tree.terminals()) == budget
    assert tree.root.meta["adaptive"]["stop"] in ("budget", "confident")
    scores = [r for r in world.log if isinstance(r, Score)]
    assert len(scores) == (len(ks) if name == "adaptive_weighted" else 0)  # one PRM call a round


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted"])
def test_adaptive_pick_and_confidence_are_the_vote_over_the_samples_drawn(name):
    world = Scripted(depth=2, answers=2, seed=1)
    pick, tree, _ = drive(make(name, round_size=2, confidence=0.9), budget=20, world=world)
    ctx = SearchContext(tree=tree, budget=20)
    samples = tree.terminals()
    expected = (
        weighted_pick(ctx, samples) if name == "adaptive_weighted" else majority_pick(samples)
    )
    assert pick.node is expected.node and pick.candidates == pytest.approx(expected.candidates)
    summary = tree.root.meta["adaptive"]
    for entry in summary["rounds"]:  # the recorded confidence is the posterior of that prefix
        drawn = samples[: entry["samples"]]
        votes: dict[str, float] = {}
        weight: dict[str, float] = {}
        for leaf in drawn:
            key = answer_key(leaf.answer)
            votes[key] = votes.get(key, 0.0) + 1.0
            weight[key] = weight.get(key, 0.0) + ctx.chain_score(leaf)
        if name == "adaptive_weighted":
            total = sum(weight.values())
            votes = {k: len(drawn) * w / total for k, w in weight.items()}
        assert (entry["leader"], entry["confidence"]) == pytest.approx(
            leader_confidence(votes, 0.0)
        )
    stopped = summary["rounds"][-1]
    assert (stopped["confidence"] >= 0.9) == (summary["stop"] == "confident")
    assert all(e["confidence"] < 0.9 for e in summary["rounds"][:-1])


class Stream(Scripted):
    """Complete samples whose answers follow `pattern` in order (e.g. "AAAB": 3 to 1)."""

    def __init__(self, pattern, **kwargs):
        super().__init__(depth=2, **kwargs)
        self.pattern, self.leaves = pattern, 0

    def _step(self, tree, node, terminal_at=None):
        child = super()._step(tree, node, terminal_at)
        if child.terminal:
            child.answer = self.pattern[self.leaves % len(self.pattern)]
            self.leaves += 1
        return child


def stream_scores(favoured):
    """Steps score 1; a finished chain 1.0 if its answer is `favoured`, else 0.2 (None: flat)."""
    return lambda n: 1.0 if not n.terminal or favoured in (None, n.answer) else 0.2


def samples_drawn(name, favoured=None):
    world = Stream("AAAB", score_fn=stream_scores(favoured))
    pick, tree, _ = drive(make(name), budget=64, world=world)
    return len(tree.terminals()), pick.node.answer


def test_adaptive_stops_when_the_posterior_says_so_and_the_prm_moves_it():
    # 3 : 1 votes, b = 4: confidence 0.75 after 4 samples, 0.902 after 8, 0.953 after 12
    assert samples_drawn("adaptive_majority") == (12, "A")
    assert samples_drawn("adaptive_weighted") == (12, "A")  # a flat PRM: the plain counts
    assert samples_drawn("adaptive_weighted", favoured="A") == (8, "A")  # the PRM backs the lead
    drawn, answer = samples_drawn("adaptive_weighted", favoured="B")  # ... or the minority
    assert drawn > 12 and answer == "B"


# ---- the answer posterior and resampling (properties) ------------------------------------------
def binomial_tail(a: int, b: int, x: float) -> float:
    """I_x(a, b) for integers: P(Binomial(a + b - 1, x) >= a)."""
    n = a + b - 1
    return sum(math.comb(n, k) * x**k * (1 - x) ** (n - k) for k in range(a, n + 1))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 80), st.integers(1, 80), st.floats(0.01, 0.99))
def test_beta_cdf_matches_the_binomial_form_for_integers(a, b, x):
    assert beta_cdf(x, a, b) == pytest.approx(binomial_tail(a, b, x), abs=1e-10)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 100.0), st.floats(0.05, 100.0), st.floats(1e-3, 1.0 - 1e-3))
def test_beta_cdf_is_a_cdf_and_symmetric(a, b, x):
    value = beta_cdf(x, a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(1.0 - beta_cdf(1.0 - x, b, a), abs=1e-9)
    assert beta_cdf(min(1.0, x + 0.1), a, b) >= value - 1e-12


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 30), min_size=1), st.integers(0, 10)
)
def test_leader_confidence_grows_with_the_leaders_votes(counts, other):
    leader, conf = leader_confidence(counts, other)
    assert leader == max(counts, key=counts.get) and 0.0 <= conf <= 1.0
    more = dict(counts)
    more[leader] += 1
    assert leader_confidence(more, other)[1] >= conf - 1e-12


def test_leader_confidence_against_monte_carlo():
    counts, other = {"7": 9.0, "8": 3.0, "9": 1.0}, 2.0
    _, bound = leader_confidence(counts, other)
    rng = random.Random(0)
    params = [c + 1.0 for c in counts.values()] + [other + 1.0]
    wins = 0
    for _ in range(20000):
        draw = [rng.gammavariate(a, 1.0) for a in params]
        wins += draw[0] == max(draw)
    assert bound <= wins / 20000 + 0.01  # a lower bound on the exact probability
    assert bound > 0.8
    assert beats_probability(3.0, 3.0) == pytest.approx(0.5)


weights_lists = st.lists(st.floats(0.0, 10.0), min_size=1, max_size=30).filter(
    lambda w: sum(w) > 1e-3
)


@settings(max_examples=200, deadline=None)
@given(weights_lists, st.integers(1, 64), st.integers(0, 2**32))
def test_systematic_resampling_counts_are_floor_or_ceil_of_m_w(raw, m, seed):
    weights = [w / sum(raw) for w in raw]
    drawn = systematic(weights, m, random.Random(seed))
    assert len(drawn) == m and drawn == sorted(drawn)
    counts = Counter(drawn)
    for i, w in enumerate(weights):
        assert math.floor(m * w - 1e-9) <= counts.get(i, 0) <= math.ceil(m * w + 1e-9)


@settings(max_examples=100, deadline=None)
@given(weights_lists, st.integers(1, 64), st.integers(0, 2**32))
def test_multinomial_resampling_draws_m_indices_with_weight(raw, m, seed):
    weights = [w / sum(raw) for w in raw]
    drawn = multinomial(weights, m, random.Random(seed))
    assert len(drawn) == m and drawn == sorted(drawn)
    assert all(weights[i] > 0 for i in drawn)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-50.0, 50.0), min_size=1, max_size=30))
def test_weights_and_ess(logs):
    weights = normalized(logs)
    assert sum(weights) == pytest.approx(1.0)
    assert 1.0 - 1e-9 <= effective_sample_size(weights) <= len(logs) + 1e-9
    assert log_sum_exp(logs) == pytest.approx(math.log(sum(math.exp(x) for x in logs)))


# ---- determinism -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("particle_filter", {}),
        ("particle_filter", {"ess_threshold": 1.0, "resampling": "multinomial"}),
        ("adaptive_majority", {"round_size": 2}),
        ("adaptive_weighted", {"round_size": 2}),
    ],
)
def test_deterministic_on_the_scripted_world(name, options):
    a, ta, _ = drive(make(name, **options), budget=8, world=early_finishing_world())
    b, tb, _ = drive(make(name, **options), budget=8, world=early_finishing_world())
    assert ta.to_dict() == tb.to_dict() and a.node.id == b.node.id and a.score == b.score


@pytest.fixture(scope="module")
def models(trained_ckpt, tiny_ckpt):
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.models.hf_prm import HFPRM

    return HFPolicy(trained_ckpt), HFPRM(tiny_ckpt)


E2E = [
    ("particle_filter", {}),
    ("particle_filter", {"ess_threshold": 1.0, "final": "best", "resampling": "multinomial"}),
    ("adaptive_majority", {"round_size": 2}),
    ("adaptive_weighted", {"round_size": 2, "confidence": 0.9}),
]


@pytest.mark.parametrize(("name", "options"), E2E)
def test_end_to_end_deterministic_under_a_seed(models, name, options):
    policy, prm = models
    problems = toy_problems(2, seed=11)

    def run():
        r = Reasoner(
            strategy=name, budget=4, policy=policy, prm=prm, seed=2, strategy_options=options
        )
        return r.solve_batch(problems)

    first, second = run(), run()
    for a, b in zip(first, second):
        assert isinstance(a, Solution) and a.reason == "finished" and a.answer is not None
        assert a.steps == b.steps and a.answer == b.answer and a.score == b.score
        assert json.dumps(a.tree.to_dict()) == json.dumps(b.tree.to_dict())
        assert a.stats.policy_new_tokens == b.stats.policy_new_tokens > 0
        if name == "adaptive_majority":
            assert a.stats.prm_tokens == 0
        else:
            assert a.stats.prm_tokens > 0
    if name == "particle_filter":
        for sol in first:
            history = sol.tree.root.meta["particle_filter"]["rounds"]
            assert all(len(e["particles"]) == 4 for e in history)
            assert all(sol.tree[t].terminal for t in history[-1]["particles"])

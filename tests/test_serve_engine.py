"""The controller's incremental API and the lockstep engine, on tiny real checkpoints (no server):
start/tick equals run, a search's seed and temperature are its own, cancel stops one search."""

from __future__ import annotations

import threading

import pytest
from conftest import toy_problems

from reasoner.controller import Controller
from reasoner.registry import get_strategy
from reasoner.serve.engine import Busy, Engine, Job


@pytest.fixture(scope="module")
def models(trained_ckpt, tiny_ckpt):
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.models.hf_prm import HFPRM

    return HFPolicy(trained_ckpt), HFPRM(tiny_ckpt)


def _key(solution):
    return solution.answer, solution.steps, solution.reason, len(solution.tree)


def test_start_and_tick_give_what_run_gives_with_each_search_its_own_seed(models):
    policy, prm = models
    beam = get_strategy("beam")()
    problems = toy_problems(3, seed=2)
    expected = {seed: Controller(policy, prm, seed=seed).run(problems, beam, 4) for seed in (0, 5)}
    controller = Controller(policy, prm, seed=0)
    # the same problems at two seeds in the same ticks, started at different ticks
    runs = [controller.start(p, beam, 4, seed=5) for p in problems]
    live = controller.tick(runs)
    runs += [controller.start(p, beam, 4) for p in problems]  # joins the running searches
    live = controller.tick(live + runs[3:])
    while live:
        live = controller.tick(live)
    assert [_key(r.solution) for r in runs[:3]] == [_key(s) for s in expected[5]]
    assert [_key(r.solution) for r in runs[3:]] == [_key(s) for s in expected[0]]


def test_a_searchs_temperature_is_its_own_and_a_strategys_own_still_wins(models):
    policy, prm = models
    problem = toy_problems(1, seed=4)[0]
    bon = get_strategy("best_of_n")()
    controller = Controller(policy, prm, temperature=1.0)
    cold, warm = (
        controller.start(problem, bon, 4, temperature=0.0),
        controller.start(problem, bon, 4),
    )
    live = [cold, warm]
    while live:
        live = controller.tick(live)
    alone = Controller(policy, prm, temperature=0.0).run([problem], bon, 4)[0]
    assert _key(cold.solution) == _key(alone)
    assert len({tuple(cold.solution.tree.steps(n)) for n in cold.solution.tree.terminals()}) == 1
    greedy = controller.start(problem, get_strategy("greedy")(), 1, temperature=1.0)
    while controller.tick([greedy]):
        pass
    assert (
        greedy.solution.steps
        == Controller(policy, prm).run([problem], get_strategy("greedy")(), 1)[0].steps
    )


def test_cancel_stops_one_search_between_ticks(models):
    policy, prm = models
    beam = get_strategy("beam")()
    controller = Controller(policy, prm)
    a, b = (controller.start(p, beam, 4) for p in toy_problems(2, seed=6))
    live = controller.tick([a, b])
    controller.cancel(a)
    assert a.done and a.solution.reason == "cancelled" and a.solution.answer is None
    assert controller.tick([a]) == []
    while live:
        live = controller.tick(live)
    assert b.solution.reason == "finished"


def test_the_engine_batches_submitted_jobs_and_refuses_over_its_limit(models):
    policy, prm = models
    engine = Engine(Controller(policy, prm), max_concurrent=3)
    engine.start()
    finished = threading.Event()
    done: list[Job] = []

    def on_done(job: Job) -> None:
        done.append(job)
        if len(done) == 3:
            finished.set()

    beam = get_strategy("beam")()
    jobs = [
        Job(problem=p, strategy=beam, budget=4, seed=1, on_done=on_done)
        for p in toy_problems(3, seed=8)
    ]
    for job in jobs:
        engine.submit(job)
    with pytest.raises(Busy):
        engine.submit(Job(problem=jobs[0].problem, strategy=beam, budget=4, seed=1))
    assert finished.wait(120)
    engine.stop()
    expected = Controller(policy, prm, seed=1).run([j.problem for j in jobs], beam, 4)
    assert [_key(j.solution) for j in jobs] == [_key(s) for s in expected]
    assert max(j.max_in_flight for j in jobs) == 3 and engine.in_flight == 0

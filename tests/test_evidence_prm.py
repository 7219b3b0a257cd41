"""The evidence PRM: token roles, features from the real embedded policy, prefix reuse, the
checkpoint format and its errors, and the trainer end to end on real records."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.api import load_prm
from reasoner.models.base import ScoreRequest
from reasoner.models.evidence_prm import (
    CONFIG_FILE,
    HEAD_FILE,
    EvidenceFeatures,
    EvidenceHead,
    EvidencePRM,
    save_evidence_prm,
)
from reasoner.models.hf_prm import HFPRM
from reasoner.models.resolve import load_tokenizer, resolve_model_path
from reasoner.models.token_evidence import FEATURES, OPERAND, RESULT, WORD, TokenRoles
from reasoner.synthetic import load_split
from reasoner.training.prm_config import EvidencePRMTrainConfig, PRMTrainConfig
from reasoner.training.prm_trainer import train_prm
from reasoner.training.records import LabeledSolution
from reasoner.types import ReasonerError

PROBLEM = load_split("test")[3]  # Maya: 65 * 3, 14 * 2, 195 + 28, 223 + 120 = 343
STEPS = [
    "On Tuesday she earns 65 * 3 = 195 dollars.",
    "On Friday she earns 14 * 2 = 28 dollars.",
    "Altogether she earns 195 + 28 = 223 dollars.",
    "With her savings she has 223 + 120 = 343 dollars. The answer is 343.",
]
F = {name: i for i, name in enumerate(FEATURES)}


@pytest.fixture(scope="module")
def roles():
    return TokenRoles(load_tokenizer(resolve_model_path("embedded", "policy")))


@pytest.fixture(scope="module")
def features():
    return EvidenceFeatures("embedded", prefix_cache_mb=0)


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(0, 99_999),
    b=st.integers(0, 99_999),
    c=st.integers(0, 999_999),
    op=st.sampled_from("+-*/"),
    word=st.sampled_from(["dollars", "apples", "km"]),
)
def test_digits_after_equals_are_results_the_others_operands(roles, a, b, c, op, word):
    text = f"She has {a} {op} {b} = {c} {word}."
    ids = roles.tokenizer.encode(text, add_special_tokens=False)
    got = roles(ids)
    digits = [(roles.text(t), r) for t, r in zip(ids, got) if r != WORD]
    assert "".join(t for t, r in digits if r == OPERAND) == f"{a}{b}"
    assert "".join(t for t, r in digits if r == RESULT) == str(c)


def test_a_slipped_result_is_evidence_against_the_step(features):
    right, slipped = STEPS[:1], ["On Tuesday she earns 65 * 3 = 196 dollars."]
    rows, _ = features.rows(
        [ScoreRequest(PROBLEM.text, right), ScoreRequest(PROBLEM.text, slipped)]
    )
    assert rows[0][0][F["res_gap_min"]] == 0.0  # every result digit is the policy's favourite
    assert rows[1][0][F["res_gap_min"]] < -1.0  # the slipped "6" is not
    assert rows[1][0][F["res_lp_min"]] < rows[0][0][F["res_lp_min"]] - 1.0
    assert rows[1][0][F["opd_lp_min"]] == pytest.approx(rows[0][0][F["opd_lp_min"]], abs=1e-5)


def test_equation_checks_flag_a_false_step_and_every_step_after_it(features):
    steps = [STEPS[0], "On Friday she earns 14 * 2 = 29 dollars.", *STEPS[2:]]
    rows, _ = features.rows([ScoreRequest(PROBLEM.text, steps)])
    assert [r[F["eq_false"]] for r in rows[0]] == [0.0, 1.0, 0.0, 0.0]
    assert [r[F["run_neg_eq_false"]] for r in rows[0]] == [0.0, -1.0, -1.0, -1.0]
    assert [r[F["eq_count"]] for r in rows[0]] == [1.0, 1.0, 1.0, 1.0]


def test_running_features_are_prefix_minima(features):
    rows, _ = features.rows([ScoreRequest(PROBLEM.text, STEPS)])
    for name in ("lp_min", "res_lp_min"):
        own = [r[F[name]] for r in rows[0]]
        run = [r[F[f"run_{name}"]] for r in rows[0]]
        assert run == pytest.approx([min(own[: i + 1]) for i in range(len(own))], abs=1e-6)


def test_prefix_reuse_gives_the_same_rows_for_fewer_tokens(features):
    cold_rows, cold_tokens = features.rows([ScoreRequest(PROBLEM.text, STEPS)])
    warm = EvidenceFeatures("embedded")
    spent = 0
    for k in range(1, len(STEPS) + 1):  # a search scores a chain one step deeper each round
        rows, tokens = warm.rows(
            [ScoreRequest(PROBLEM.text, STEPS[:k]), ScoreRequest(PROBLEM.text, ["A sibling."])]
        )
        spent += tokens
    flat = [v for row in rows[0] for v in row]
    assert flat == pytest.approx([v for row in cold_rows[0] for v in row], abs=1e-4)
    assert tokens < cold_tokens / 3  # the deepest round encoded only its new step (and a sibling)
    assert spent < 2.5 * cold_tokens


def test_siblings_in_one_call_share_one_prompt_encoding(features):
    siblings = [ScoreRequest(PROBLEM.text, [s]) for s in STEPS]  # four first-step candidates
    cold_rows, cold_tokens = features.rows(siblings)
    warm_rows, warm_tokens = EvidenceFeatures("embedded").rows(siblings)
    prompt = features.layout(siblings[0])[1][0][0]
    assert warm_tokens == cold_tokens - 3 * (prompt - 1)  # the prompt once, not four times
    flat = [v for chain in warm_rows for row in chain for v in row]
    assert flat == pytest.approx([v for chain in cold_rows for row in chain for v in row], abs=1e-4)


@pytest.fixture
def evidence_ckpt(tmp_path):
    torch.manual_seed(0)
    head = EvidenceHead(len(FEATURES), 4)
    return save_evidence_prm(tmp_path / "ev", head, base="embedded", features=list(FEATURES))


def test_checkpoint_loads_through_load_prm_and_scores_in_unit_interval(evidence_ckpt):
    prm = load_prm(str(evidence_ckpt), threads=1)
    assert isinstance(prm, EvidencePRM) and prm.num_parameters > 3_000_000
    scores, tokens = prm.score(
        [ScoreRequest(PROBLEM.text, STEPS), ScoreRequest(PROBLEM.text, STEPS[:2])]
    )
    assert [len(s) for s in scores] == [4, 2] and tokens > 0
    assert all(0.0 < v < 1.0 for s in scores for v in s)
    assert scores[1] == pytest.approx(scores[0][:2], abs=1e-5)  # a step's score sees no future
    assert prm.score([ScoreRequest(PROBLEM.text, [])])[0] == [[]]
    # a vLLM policy can use it: it runs on HF whatever the backend (no vllm import needed)
    assert isinstance(load_prm(str(evidence_ckpt), backend="vllm", threads=1), EvidencePRM)


def test_damaged_checkpoints_fail_with_the_file_named(evidence_ckpt):
    config = json.loads((evidence_ckpt / CONFIG_FILE).read_text())
    (evidence_ckpt / CONFIG_FILE).write_text(json.dumps({**config, "features": ["lp_max"]}))
    with pytest.raises(ReasonerError, match=r"evidence_prm.json: trained on features \['lp_max'\]"):
        EvidencePRM(evidence_ckpt)
    (evidence_ckpt / CONFIG_FILE).write_text(json.dumps({**config, "features": ["lp_min"]}))
    with pytest.raises(ReasonerError, match="head.safetensors does not match evidence_prm.json"):
        EvidencePRM(evidence_ckpt)
    (evidence_ckpt / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ReasonerError, match="evidence_prm.json: not valid JSON"):
        EvidencePRM(evidence_ckpt)
    (evidence_ckpt / CONFIG_FILE).write_text(json.dumps(config))
    (evidence_ckpt / HEAD_FILE).unlink()
    with pytest.raises(ReasonerError, match="has no head.safetensors"):
        EvidencePRM(evidence_ckpt)
    with pytest.raises(ReasonerError, match="is an evidence PRM, not a causal-LM PRM"):
        HFPRM(evidence_ckpt)


def _records(n_problems: int) -> list[LabeledSolution]:
    """Reference solutions (value 1 at every step) and their copies with one slipped result at
    step 0 (value 0 from there on), for real arith train problems."""
    records = []
    for p in load_split("train")[:n_problems]:
        steps = [f"We get {a} {op} {b} = {c}." for a, op, b, c in p.metadata["steps"]]
        steps[-1] += f" The answer is {p.answer}."
        a, op, b, c = p.metadata["steps"][0]
        slipped = [f"We get {a} {op} {b} = {c + 1}.", *steps[1:]]
        n = len(steps)
        outcomes = [[1.0, 1.0] for _ in range(n - 1)] + [[1.0]]
        for s, o, ok, first in (
            (steps, outcomes, True, -1),
            (slipped, [[0.0, 0.0] for _ in range(n - 1)] + [[0.0]], False, 0),
        ):
            records.append(LabeledSolution(p.id, p.text, p.answer, s, o, ok, first))
    return records


def test_trainer_learns_the_slip_from_labels_and_resumes(tmp_path):
    records = _records(24)
    cfg = EvidencePRMTrainConfig(
        out_dir=str(tmp_path / "run"),
        label="er",
        eta=2.5,  # a float eta is accepted
        epochs=30,
        batch_size=32,
        lr=1e-2,
        warmup_steps=5,
        eval_every=20,
        save_every=20,
        val_fraction=0.25,
        threads=1,
        evidence_groups=["token"],  # no calculator: the slip must be read off the policy
    )
    final = train_prm(cfg, records=records, progress=False)
    summary = json.loads((final / "prm_training.json").read_text())
    assert summary["kind"] == "evidence" and summary["eta"] == 2.5
    config = json.loads((final / CONFIG_FILE).read_text())
    assert config["features"] and not any("eq_" in f for f in config["features"])
    assert summary["train_records"] + summary["val_records"] == len(records)  # all data used
    assert summary["val"]["pair_acc_min"] > 0.9  # held-out problems: right above slipped
    assert summary["val"]["auc_vs_exact"] > 0.9
    prm = EvidencePRM(final)
    requests = [ScoreRequest(r.problem, r.steps) for r in records[:2]]
    first = prm.score(requests)[0]
    assert min(first[0]) > max(first[1][:1])  # train problem: the slipped step scores lower
    # a rerun finds the checkpoint and the cached features, and writes the same head
    again = EvidencePRM(train_prm(cfg, records=records, progress=False)).score(requests)[0]
    assert sum(again, []) == pytest.approx(sum(first, []))


def test_trainer_rejects_options_of_the_lm_kind_before_any_work(tmp_path):
    with pytest.raises(ReasonerError, match="kind must be one of lm, evidence"):
        PRMTrainConfig.from_dict({"kind": "tree"})
    with pytest.raises(ReasonerError, match="evidence_groups.*token, equation"):
        EvidencePRMTrainConfig(evidence_groups=["tokens"])
    options = {"kind": "evidence", "extra_layers": 2, "out_dir": str(tmp_path / "x")}
    with pytest.raises(ReasonerError, match="'extra_layers' is an option of kind 'lm'"):
        PRMTrainConfig.from_dict(options)
    assert not (tmp_path / "x").exists()

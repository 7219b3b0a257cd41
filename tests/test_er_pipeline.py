"""Rollout labeling and PRM training end to end with tiny real models."""

import json
import math
import warnings

import pytest
from conftest import toy_problems

from reasoner.models.base import ScoreRequest
from reasoner.models.hf_policy import HFPolicy
from reasoner.models.hf_prm import HFPRM
from reasoner.step_format import StepFormat
from reasoner.training.labeling import LabelConfig, label_chunk, run_labeling
from reasoner.training.prm_config import LMPRMTrainConfig
from reasoner.training.prm_metrics import pairwise_accuracy, roc_auc
from reasoner.training.prm_trainer import train_prm
from reasoner.training.records import LabeledSolution, read_records
from reasoner.types import ReasonerError


@pytest.fixture(scope="module")
def policy(trained_ckpt):
    # tight caps keep a barely trained policy's rambling rollouts cheap
    return HFPolicy(trained_ckpt, step_format=StepFormat(max_steps=4, max_step_tokens=32))


def test_label_chunk_records_raw_outcomes_per_step(policy):
    problems = toy_problems(3, seed=11)
    cfg = LabelConfig(samples=2, rollouts=3, seed=1)
    records, stats = label_chunk(policy, problems, cfg)
    assert len(records) == 6 and stats["new_tokens"] > 0
    for r in records:
        assert len(r.outcomes) == len(r.steps)
        assert all(len(o) == 3 for o in r.outcomes[:-1])
        assert r.outcomes[-1] == [float(r.correct)]
        assert all(v in (0.0, 1.0) for o in r.outcomes for v in o)
    # the rollouts of a prefix continue the sampled chain in token space: same seed, same records
    again, _ = label_chunk(policy, problems, cfg)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


def test_labeling_resumes_without_redoing_problems(policy, tmp_path):
    problems = toy_problems(4, seed=12)
    cfg = LabelConfig(
        out=str(tmp_path / "r.jsonl"), samples=1, rollouts=2, problems=2, chunk=1, suite="toy"
    )
    run_labeling(cfg, policy=policy, problems=problems, progress=False)
    first = read_records(cfg.out)
    assert sorted({r.problem_id for r in first}) == ["toy-0", "toy-1"]
    cfg.problems = 4
    run_labeling(cfg, policy=policy, problems=problems, progress=False)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    ids = [json.loads(line)["problem_id"] for line in lines]
    assert ids[: len(first)] == [r.problem_id for r in first]  # untouched
    assert sorted(set(ids)) == ["toy-0", "toy-1", "toy-2", "toy-3"] and len(ids) == len(set(ids))


def learnable_records(n=160):
    """Step 2 is right ('= 5') or wrong ('= 7'); a PRM must learn to tell them apart."""
    out = []
    for i in range(n):
        good = i % 2 == 0
        steps = [f"Ann has {2 + i % 5} apples.", "So x = 5." if good else "So x = 7."]
        out.append(
            LabeledSolution(
                problem_id=f"p{i}",
                problem="How many?",
                gold="5",
                steps=steps,
                outcomes=[[1.0, 0.0, 1.0, 0.0], [1.0 if good else 0.0]],
                correct=good,
                first_error=-1 if good else 1,
            )
        )
    return out


def quick_exact_config(base, out_dir, **overrides) -> LMPRMTrainConfig:
    """A one-epoch oracle-label PRM run on a tiny base: checks what reaches the checkpoint."""
    return LMPRMTrainConfig(
        **{
            "base": str(base),
            "out_dir": str(out_dir),
            "label": "exact",
            "eta": None,
            "epochs": 1,
            "batch_size": 8,
            "eval_every": 1000,
            "save_every": 1000,
            "val_fraction": 0.25,
            **overrides,
        }
    )


@pytest.mark.slow
def test_prm_training_learns_step_correctness(tiny_ckpt, tmp_path):
    cfg = LMPRMTrainConfig(
        base=str(tiny_ckpt),
        out_dir=str(tmp_path / "prm"),
        label="er",
        eta=2.0,
        epochs=6,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        eval_every=20,
        save_every=1000,
        val_fraction=0.25,
    )
    final = train_prm(cfg, records=learnable_records(), progress=False)
    log = [json.loads(x) for x in (tmp_path / "prm" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    assert log[-1]["val_auc_vs_exact"] > 0.95
    prm = HFPRM(final)
    [good, bad], _ = prm.score(
        [
            ScoreRequest("How many?", ["Ann has 3 apples.", "So x = 5."]),
            ScoreRequest("How many?", ["Ann has 3 apples.", "So x = 7."]),
        ]
    )
    assert good[1] > 0.8 > 0.2 > bad[1]
    # the first step's target is the ER value of [1,0,1,0] at eta=2, ~0.78: learned, not forced to 0/1
    assert 0.5 < good[0] < 0.95


def test_roc_auc_matches_definition():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert roc_auc([0.1, 0.2], [1, 1]) is None


def test_pairwise_accuracy_counts_only_pairs_within_a_problem():
    ex = [
        {"problem": "a", "correct": True},
        {"problem": "a", "correct": False},
        {"problem": "a", "correct": False},
        {"problem": "b", "correct": True},  # b's scores are all higher than a's: ignored
        {"problem": "b", "correct": False},
        {"problem": "c", "correct": False},  # no correct solution: no pair
    ]
    # a: 0.5 vs 0.4 (win), 0.5 vs 0.5 (tie); b: 0.9 vs 0.95 (loss)
    assert pairwise_accuracy(ex, [0.5, 0.4, 0.5, 0.9, 0.95, 0.1]) == (1 + 0.5 + 0) / 3
    assert pairwise_accuracy(ex[5:], [0.1]) is None


def test_prm_format_override_and_lm_loss_reach_the_checkpoint(tiny_ckpt, tmp_path):
    """The PRM input format can follow the policy's own prompt; an auxiliary LM loss trains too."""
    cfg = quick_exact_config(
        tiny_ckpt,
        tmp_path / "prm",
        prm_format={"prm_prompt_template": "Question: {problem}\nAnswer:\n"},
        lm_loss_weight=0.5,
    )
    final = train_prm(cfg, records=learnable_records(40), progress=False)
    saved = json.loads((final / "step_format.json").read_text())
    assert saved["prm_prompt_template"] == "Question: {problem}\nAnswer:\n"
    prm = HFPRM(final)
    ids, tags = prm.builder.build("How many?", ["So x = 5."])
    text = prm.tokenizer.decode(ids[: tags[0]], skip_special_tokens=True)
    assert text == "Question: How many?\nAnswer:\nSo x = 5."
    log = [json.loads(x) for x in (tmp_path / "prm" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4 and math.isfinite(log[-1]["train_loss"])


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"prm_format": {"delimiter": "\n"}}, "not PRM input fields"),
     ({"prm_format": "x"}, "must be a table"), ({"lm_loss_weight": -1.0}, ">= 0")],
)  # fmt: skip
def test_bad_recipe_options_fail_before_training(tiny_ckpt, tmp_path, changes, match):
    cfg = LMPRMTrainConfig(
        base=str(tiny_ckpt), out_dir=str(tmp_path / "prm"), label="hard", eta=None
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    with pytest.raises(ReasonerError, match=match):
        train_prm(cfg, records=learnable_records(8), progress=False)


def test_a_kill_between_the_records_of_a_problem_resumes_to_the_uninterrupted_file(
    policy, tmp_path
):
    """kill -9 at any byte of the labels file (between two records of one problem, mid-line,
    between problems), then rerun: the file ends byte for byte as an uninterrupted run's."""
    problems = toy_problems(4, seed=13)

    def config(name: str) -> LabelConfig:
        return LabelConfig(
            out=str(tmp_path / name), samples=3, rollouts=2, problems=4, chunk=2, suite="toy"
        )

    run_labeling(config("full.jsonl"), policy=policy, problems=problems, progress=False)
    full = (tmp_path / "full.jsonl").read_bytes()
    ids = [json.loads(line)["problem_id"] for line in full.splitlines()]
    assert len(ids) > len(set(ids)) >= 3  # problems with several records each
    ends = [i + 1 for i, byte in enumerate(full) if byte == ord("\n")]
    # every line boundary (the first record of a problem alone on disk among them) and a torn line
    cuts = [0, *ends[:-1], ends[1] + 7]
    for cut in cuts:
        torn = tmp_path / "torn.jsonl"
        torn.write_bytes(full[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "removing a truncated last line"
            run_labeling(config("torn.jsonl"), policy=policy, problems=problems, progress=False)
        assert torn.read_bytes() == full, f"resumed after a cut at byte {cut}"

"""RAFT's selectors and its up-front refusals (fast: no sampling)."""

from __future__ import annotations

import json

import pytest

from reasoner.cli import main
from reasoner.training.raft import RaftConfig, load_prompts, select_round
from reasoner.training.raft_selectors import SELECTORS, Chain, check_selector, select
from reasoner.types import Problem, ReasonerError

CHAINS = [
    Chain("12", 0.9),  # best score overall, but ...
    Chain(None, 0.99),  # ... an answerless chain never competes
    Chain("7", 0.2),
    Chain("7", 0.4),
    Chain("30", 0.5),
]


def test_prm_and_orm_keep_the_best_scored_answered_chain():
    for name in ("prm", "orm"):
        choice = select(name, CHAINS, "p:1")
        assert (choice.index, choice.reward) == (0, 0.9)
    tie = [Chain("1", 0.5), Chain("2", 0.5)]
    assert select("prm", tie, "p:1").index == 0  # ties: the earliest (best_choice's rule)


def test_majority_keeps_a_chain_of_the_most_voted_answer():
    choice = select("majority", CHAINS, "p:1")
    assert choice.index == 2 and choice.reward == pytest.approx(2 / 5)


def test_random_is_seeded_by_its_key_and_only_picks_answered_chains():
    picks = {select("random", CHAINS, f"p:{i}").index for i in range(200)}
    assert picks == {0, 2, 3, 4}  # never 1 (no answer); every answered one sometimes
    assert select("random", CHAINS, "p:7") == select("random", CHAINS, "p:7")


def test_oracle_keeps_the_first_chain_right_by_the_train_gold():
    assert select("oracle", CHAINS, "p:1", gold="7").index == 2
    assert select("oracle", CHAINS, "p:1", gold="30.0").index == 4  # graded, not string-equal
    none = select("oracle", CHAINS, "p:1", gold="99")
    assert none.index is None and none.reason == "none-correct"


def test_gold_reaches_the_oracle_only():
    for name in SELECTORS:
        if name == "oracle":
            with pytest.raises(ReasonerError, match="needs the train problem's gold"):
                select(name, CHAINS, "p:1")
        else:
            with pytest.raises(ReasonerError, match="only the oracle"):
                select(name, CHAINS, "p:1", gold="7")


def test_threshold_keeps_nothing_below_it():
    assert select("prm", CHAINS, "p:1", threshold=0.95).index is None
    assert select("prm", CHAINS, "p:1", threshold=0.9).index == 0
    assert select("majority", CHAINS, "p:1", threshold=0.5).reason == "below-threshold"
    with pytest.raises(ReasonerError, match="selector 'random' has none"):
        check_selector("random", 0.5)


def test_no_answered_chain_keeps_nothing():
    for name in SELECTORS:
        gold = "1" if name == "oracle" else None
        assert select(name, [Chain(None, 0.9)], "p", gold=gold).index is None


def test_select_round_is_blind_to_gold_except_for_the_oracle():
    """The gold of a prompt changes nothing any non-oracle selector keeps (it is graded only
    after selection, for the report); the oracle's choice follows it."""
    prompts = [Problem(text=f"q{i}", id=f"arith-train-{i}", answer="7") for i in range(3)]
    samples = {
        p.id: {"chains": [{"answer": a, "score": s, "steps": [a]} for a, s in CHAINS_RAW]}
        for p in prompts
    }
    other = [Problem(text=p.text, id=p.id, answer="12") for p in prompts]
    for name in SELECTORS:
        cfg = RaftConfig(selector=name)
        a = select_round(cfg, prompts, samples, 1)
        b = select_round(cfg, other, samples, 1)
        if name == "oracle":
            assert [s["index"] for s in a] == [2] * 3 and [s["index"] for s in b] == [0] * 3
            assert all(s["correct"] for s in a + b)
        else:
            assert [s["index"] for s in a] == [s["index"] for s in b]


CHAINS_RAW = [(c.answer, c.score) for c in CHAINS]


def test_prompts_come_from_the_train_split_only():
    prompts = load_prompts(RaftConfig(prompts=50))
    assert all(p.id.startswith("arith-train-") for p in prompts)
    from reasoner.synthetic import load_split

    test_ids = {p.id for p in load_split("test")}
    assert not test_ids & {p.id for p in prompts}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--selector", "prmm"], "unknown selector 'prmm' (did you mean 'prm'?); valid: prm, orm"),
        (["--k", "0"], "k must be >= 1"),
        (["--rounds", "0"], "rounds must be >= 1"),
        (["--selector", "oracle", "--threshold", "0.5"], "has none: drop the threshold"),
        (["--prm", "/nonexistent/prm"], "/nonexistent/prm"),
        (["--policy", "/nonexistent/policy"], "policy model path '/nonexistent/policy'"),
    ],
)
def test_bad_input_is_one_error_before_any_sampling(tmp_path, capsys, flags, message):
    out = tmp_path / "raft"
    assert main(["raft", "--out", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reasoner: error: ") and message in err and err.count("\n") == 1
    assert not (out / "samples").exists() and not (out / "round-1").exists()


def test_a_policy_the_trainer_cannot_continue_from_is_refused(tmp_path, capsys):
    from reasoner.models.resolve import embedded_dir

    src = embedded_dir("policy")
    bad = tmp_path / "gpt2-like"
    bad.mkdir()
    for f in src.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    out = tmp_path / "raft"
    assert main(["raft", "--out", str(out), "--policy", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the policy trainer cannot continue from" in err and "tie_word_embeddings" in err
    assert not (out / "samples").exists()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for f in src.iterdir():
        (truncated / f.name).write_bytes(f.read_bytes())
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["raft", "--out", str(out), "--policy", str(truncated), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and err.count("\n") == 1
    assert not (out / "samples").exists()

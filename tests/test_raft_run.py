"""RAFT end to end on the embedded models at a tiny size: a round's training changes the policy,
a run killed mid-round resumes without redoing finished prompts, only train gold reaches the
oracle, and the shipped policy is never overwritten without --install."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from benchmarks.raft_study import evaluate_policy, write_study
from reasoner.cli import main
from reasoner.models.resolve import embedded_dir
from reasoner.training import raft
from reasoner.training.raft import RaftConfig, run_raft
from reasoner.training.raft_policy import policy_digest

pytestmark = pytest.mark.slow

TINY = {
    "prompts": 8,
    "k": 2,
    "batch_size": 4,
    "train_batch_size": 2,
    "save_every": 1,
    "lr": 1e-4,
    "eval_problems": 4,
    "eval_majority_n": 2,
    "eval_batch_size": 4,
}


def _tiny_flags(rounds: int) -> list[str]:
    return ["--rounds", str(rounds), *[f for k, v in TINY.items() for f in ("--set", f"{k}={v}")]]


@pytest.fixture(scope="module")
def prm_run(tmp_path_factory):
    """Two rounds with the shipped ER-PRM, through the CLI without --install."""
    out = tmp_path_factory.mktemp("raft") / "prm"
    shipped = policy_digest(embedded_dir("policy"))
    assert main(["raft", "--out", str(out), "--quiet", *_tiny_flags(2)]) == 0
    assert policy_digest(embedded_dir("policy")) == shipped  # no --install: untouched
    return out


def _nll(model_dir, texts) -> float:
    """Mean loss of the policy on the kept solutions' tokens (as the trainer computes it)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from reasoner.step_format import StepFormat
    from reasoner.training.policy_trainer import training_text_ids

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    losses = []
    for problem in texts:
        ids, mask = training_text_ids(problem, tok, StepFormat())
        ids_t = torch.tensor([ids])
        labels = ids_t.masked_fill(~torch.tensor([mask], dtype=torch.bool), -100)
        with torch.no_grad():
            losses.append(model(input_ids=ids_t, labels=labels).loss.item())
    return sum(losses) / len(losses)


def test_a_rounds_training_changes_the_policy(prm_run):
    from reasoner.types import Problem

    summary = json.loads((prm_run / "summary.json").read_text())
    assert [r["round"] for r in summary["rows"]] == [0, 1, 2]
    r1 = summary["rows"][1]
    assert r1["selected"] > 0 and r1["training_steps"] >= 1 and r1["sampling_tokens"] > 0
    assert r1["sampling_prm_tokens"] > 0  # the prm selector scored every chain
    final = prm_run / "round-1" / "train" / "final"
    assert policy_digest(final) != policy_digest(embedded_dir("policy"))
    prompts = {p.id: p for p in raft.load_prompts(RaftConfig(prompts=8))}
    kept = json.loads((prm_run / "round-1" / "selected.json").read_text())
    texts = [
        Problem(text=prompts[s["id"]].text, id=s["id"], reference="\n\n".join(s["steps"]))
        for s in kept
        if s["steps"]
    ]
    # fine-tuning on the kept solutions made them more likely
    assert _nll(final, texts) < _nll(embedded_dir("policy"), texts) - 1e-3


def test_a_run_killed_mid_round_resumes_without_redoing_finished_prompts(
    prm_run, tmp_path, monkeypatch
):
    run = tmp_path / "resumed"
    shutil.copytree(prm_run, run)
    original = json.loads((prm_run / "summary.json").read_text())["rows"]
    # killed in round 2's sampling: the first batch written, a torn line after it
    shutil.rmtree(run / "round-2")
    r1_policy = policy_digest(run / "round-1" / "train" / "final")
    [samples] = [p for p in (run / "samples").iterdir() if p.name.startswith(r1_policy)]
    lines = samples.read_text().splitlines(keepends=True)
    assert len(lines) == 8
    kept_bytes = "".join(lines[:4])
    samples.write_text(kept_bytes + lines[4][:40])
    # and its evaluation never ran
    shutil.rmtree(run / "eval" / policy_digest(prm_run / "round-2" / "train" / "final"))
    # ... then, on the first resume, killed again in round 2's training (after one step)
    sampled: list[str] = []
    real_solve = raft.Reasoner.solve_batch

    def spy_solve(self, problems):
        sampled.extend(p.id for p in problems if p.id.startswith("arith-train-"))  # not eval
        return real_solve(self, problems)

    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def killed_step(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_step(self, *a, **kw)

    monkeypatch.setattr(raft.Reasoner, "solve_batch", spy_solve)
    monkeypatch.setattr(torch.optim.AdamW, "step", killed_step)
    cfg = RaftConfig.from_dict(json.loads((run / "raft_config.json").read_text()))
    cfg.out_dir = str(run)
    with pytest.raises(KeyboardInterrupt):
        run_raft(cfg, evaluate_policy, progress=False)
    prompts = [p.id for p in raft.load_prompts(cfg)]
    assert sampled == prompts[4:]  # only the unfinished batch was sampled
    assert samples.read_text().startswith(kept_bytes)
    assert (run / "round-2" / "train" / "checkpoint.pt").exists()
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    sampled.clear()
    summary = run_raft(cfg, evaluate_policy, progress=False)
    assert sampled == []  # every prompt was sampled already
    timing = ("_wall_s", "_cpu_s")
    strip = [
        {k: v for k, v in r.items() if not k.endswith(timing) and k != "policy"} for r in original
    ]
    again = [
        {k: v for k, v in r.items() if not k.endswith(timing) and k != "policy"}
        for r in summary["rows"]
    ]
    assert again == strip  # the resumed run is the uninterrupted one
    assert policy_digest(run / "round-2" / "train" / "final") == policy_digest(
        prm_run / "round-2" / "train" / "final"
    )
    rows = write_study([run], tmp_path / "report")
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert (tmp_path / "report" / "raft_greedy.png").stat().st_size > 0


def test_only_train_gold_reaches_the_oracle(tmp_path, monkeypatch):
    from reasoner.synthetic import load_split

    seen: list[tuple[str, str | None, str]] = []
    real_select = raft.select

    def spy(name, chains, key, gold=None, threshold=None):
        seen.append((name, gold, key))
        return real_select(name, chains, key, gold, threshold)

    monkeypatch.setattr(raft, "select", spy)
    cfg = RaftConfig(
        out_dir=str(tmp_path / "oracle"),
        selector="oracle",
        rounds=1,
        eval_majority_rounds=[0],  # round 1: greedy only
        **TINY,
    )
    cfg.k = 4
    summary = run_raft(cfg, evaluate_policy, progress=False)
    train = {p.id: p.answer for p in raft.load_prompts(cfg)}
    test_ids = {p.id for p in load_split("test")}
    assert len(seen) == cfg.prompts
    for name, gold, key in seen:
        pid = key.split(":")[0]
        assert name == "oracle" and pid in train and pid not in test_ids and gold == train[pid]
    row = summary["rows"][1]
    assert row["selected"] > 0 and row["selected_correct_rate"] == 1.0
    assert summary["rows"][0]["majority2_accuracy"] is not None
    assert row["majority2_accuracy"] is None and row["greedy_accuracy"] is not None
    # asking for majority@N at a finished round later adds it to the row, sampling nothing again
    sampled: list[str] = []
    real_solve = raft.Reasoner.solve_batch

    def spy_solve(self, problems):
        sampled.extend(p.id for p in problems if p.id.startswith("arith-train-"))
        return real_solve(self, problems)

    monkeypatch.setattr(raft.Reasoner, "solve_batch", spy_solve)
    cfg.eval_majority_rounds = [0, 1]
    again = run_raft(cfg, evaluate_policy, progress=False)["rows"][1]
    assert sampled == [] and again["majority2_accuracy"] is not None
    assert again["greedy_accuracy"] == row["greedy_accuracy"]
    saved = json.loads((tmp_path / "oracle" / "round-1" / "metrics.json").read_text())
    assert saved["majority2_accuracy"] == again["majority2_accuracy"]


def test_install_is_asked_for_and_copies_the_last_rounds_policy(prm_run, tmp_path, monkeypatch):
    from reasoner.training import install

    slot = tmp_path / "embedded-policy"
    monkeypatch.setattr(install, "embedded_dir", lambda kind: slot)  # not the package's own
    args = ["raft", "--out", str(prm_run), "--quiet", "--install", *_tiny_flags(2)]
    assert main(args) == 0  # every round is done: it only installs
    final = prm_run / "round-2" / "train" / "final"
    assert (slot / "model.safetensors").read_bytes() == (final / "model.safetensors").read_bytes()
    assert policy_digest(slot) == policy_digest(final)

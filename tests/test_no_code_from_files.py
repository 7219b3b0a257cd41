"""No code runs from files (issue #14, item 5): every torch state file reasoner reads (the
train-policy checkpoint and its init_from, the train-prm checkpoint, the evidence features cache)
is read with weights_only=True. A crafted pickle placed there is refused with an error naming the
file, and its code never runs; what the trainers write still resumes to identical results."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import pytest
import torch
from conftest import toy_problems

from reasoner.models.torch_state import load_torch_state
from reasoner.training.evidence_trainer import record_features
from reasoner.training.policy_trainer import PolicyTrainConfig, train_policy
from reasoner.training.prm_config import LMPRMTrainConfig
from reasoner.training.prm_loop import run_training
from reasoner.types import ReasonerError


class _Payload:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path, as_zip: bool) -> Path:
    """A crafted state file at `path`: torch.save's zip format, or a bare pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": _Payload(marker), "optim": {}, "step": 1, "key": "", "rows": []}
    if as_zip:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    return path


def _policy_config(out: Path, **changes) -> PolicyTrainConfig:
    fields = dict(
        out_dir=str(out),
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_layers=1,
        num_heads=2,
        seq_len=64,
        batch_size=4,
        steps=4,
        warmup_steps=1,
        save_every=2,
        log_every=2,
        threads=1,
    )
    return PolicyTrainConfig(**{**fields, **changes})


@pytest.fixture(params=[True, False], ids=["torch-zip", "bare-pickle"])
def as_zip(request) -> bool:
    return request.param


def test_a_crafted_policy_checkpoint_is_refused(tmp_path, as_zip):
    marker = tmp_path / "ran"
    ckpt = _plant(tmp_path / "run" / "checkpoint.pt", marker, as_zip)
    with pytest.raises(ReasonerError, match=f"{ckpt}: refused.*delete {ckpt}"):
        train_policy(_policy_config(tmp_path / "run"), problems=toy_problems(60), progress=False)
    assert not marker.exists()


def test_a_crafted_init_from_checkpoint_is_refused(tmp_path, as_zip):
    first = tmp_path / "stage1"
    train_policy(_policy_config(first, steps=2), problems=toy_problems(60), progress=False)
    marker = tmp_path / "ran"
    ckpt = _plant(first / "checkpoint.pt", marker, as_zip)
    cfg = _policy_config(tmp_path / "stage2", init_from=str(first))
    with pytest.raises(ReasonerError, match=f"{ckpt}: refused.*init_from"):
        train_policy(cfg, problems=toy_problems(60), progress=False)
    assert not marker.exists()


def test_a_crafted_prm_checkpoint_is_refused(tmp_path, as_zip):
    marker = tmp_path / "ran"
    ckpt = _plant(tmp_path / "checkpoint.pt", marker, as_zip)
    model = torch.nn.Linear(2, 1)
    optim = torch.optim.AdamW(model.parameters())
    with pytest.raises(ReasonerError, match=f"{ckpt}: refused.*delete {ckpt}"):
        run_training(
            LMPRMTrainConfig(out_dir=str(tmp_path)),
            tmp_path,
            model,
            optim,
            list(model.parameters()),
            2,
            lambda step: model(torch.ones(1, 2)).sum(),
            dict,
            "test",
            False,
        )
    assert not marker.exists()


def test_a_crafted_features_cache_is_refused(tmp_path, as_zip):
    marker = tmp_path / "ran"
    cache = _plant(tmp_path / "features.pt", marker, as_zip)
    with pytest.raises(ReasonerError, match=f"{cache}: refused.*delete {cache}"):
        record_features([], "embedded", cache, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a zip"], ids=["empty", "half-zip"])
def test_a_damaged_state_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ReasonerError, match=f"{path}: .*delete it"):
        load_torch_state(path, "delete it")


def test_random_bytes_are_a_clear_error_never_another_exception(tmp_path):
    """The weights-only unpickler raises IndexError, KeyError, struct.error... on garbage."""
    path = tmp_path / "checkpoint.pt"
    rng = random.Random(0)
    for i in range(300):
        head = (b"", b"\x80\x02", b"PK\x03\x04")[i % 3]
        path.write_bytes(head + rng.randbytes(rng.choice([1, 2, 8, 64])))
        with pytest.raises(ReasonerError, match="delete it"):
            load_torch_state(path, "delete it")


def test_a_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    train_policy(_policy_config(run, steps=2), problems=toy_problems(60), progress=False)
    with pytest.raises(ReasonerError, match=r"checkpoint.pt does not fit this run.*delete"):
        train_policy(_policy_config(run, hidden_size=64), problems=toy_problems(60), progress=False)


def test_a_killed_policy_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """The checkpoint the trainer writes (model, AdamW state, step) reads back with
    weights_only=True: a run stopped after its step-2 checkpoint resumes to the weights of an
    uninterrupted run, byte for byte."""
    problems = toy_problems(60)
    whole = train_policy(_policy_config(tmp_path / "whole"), problems=problems, progress=False)
    clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def stop_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", stop_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_policy(_policy_config(tmp_path / "killed"), problems=problems, progress=False)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    assert load_torch_state(tmp_path / "killed" / "checkpoint.pt", "")["step"] == 2
    resumed = train_policy(_policy_config(tmp_path / "killed"), problems=problems, progress=False)
    assert (resumed / "model.safetensors").read_bytes() == (
        whole / "model.safetensors"
    ).read_bytes()
    # and a later stage starts from it (init_from), also read with weights_only=True
    stage2 = _policy_config(tmp_path / "stage2", init_from=str(tmp_path / "whole"))
    assert (train_policy(stage2, problems=problems, progress=False) / "model.safetensors").exists()

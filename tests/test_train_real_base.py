"""Training on a real base (#16 part 5): a step tag the base splits becomes a new token on request,
and an evidence PRM keeps its base with it, so its directory can be moved."""

from __future__ import annotations

import json
import shutil

import pytest
from test_er_pipeline import learnable_records, quick_exact_config

from reasoner.models.base import ScoreRequest
from reasoner.models.hf_prm import HFPRM
from reasoner.models.loading import load_prm
from reasoner.models.resolve import load_tokenizer
from reasoner.training.prm_config import EvidencePRMTrainConfig
from reasoner.training.prm_trainer import train_prm
from reasoner.types import ReasonerError

TAG = "ки"  # Math-Shepherd's tag: several tokens of the tiny base's byte-level vocabulary


def test_a_split_tag_is_refused_unless_added_as_a_token(tiny_ckpt, tmp_path):
    assert len(load_tokenizer(tiny_ckpt).encode(TAG, add_special_tokens=False)) > 1
    cfg = quick_exact_config(tiny_ckpt, tmp_path / "refused", prm_format={"step_tag": TAG})
    with pytest.raises(ReasonerError):
        train_prm(cfg, records=learnable_records(8), progress=False)

    cfg = quick_exact_config(
        tiny_ckpt, tmp_path / "prm", prm_format={"step_tag": TAG}, add_step_tag_token=True
    )
    final = train_prm(cfg, records=learnable_records(16), progress=False)
    before = len(load_tokenizer(tiny_ckpt))
    tokenizer = load_tokenizer(final)
    assert tokenizer.encode(TAG, add_special_tokens=False) == [before]  # one new token
    assert json.loads((final / "config.json").read_text())["vocab_size"] == before + 1
    prm = HFPRM(final)
    [scores], _ = prm.score([ScoreRequest("How many?", ["Ann has 3 apples.", "So x = 5."])])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_an_evidence_prm_directory_can_be_moved(tiny_ckpt, tmp_path):
    base = shutil.copytree(tiny_ckpt, tmp_path / "base")
    cfg = EvidencePRMTrainConfig(
        base=str(base),
        out_dir=str(tmp_path / "run"),
        label="hard",
        eta=None,
        epochs=1,
        batch_size=8,
        eval_every=1000,
        save_every=1000,
        val_fraction=0.25,
        evidence_groups=["token"],
    )
    final = train_prm(cfg, records=learnable_records(16), progress=False)
    assert json.loads((final / "evidence_prm.json").read_text())["base"] == "base"
    request = ScoreRequest("How many?", ["Ann has 3 apples.", "So x = 5."])
    want, _ = load_prm(str(final)).score([request])
    moved = shutil.move(str(final), str(tmp_path / "elsewhere" / "prm"))
    shutil.rmtree(base)  # the original base is gone too: the checkpoint holds its own
    got, _ = load_prm(moved).score([request])
    assert got == want

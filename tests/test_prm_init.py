"""Identity-initialized extra decoder layers for PRMs (reasoner.training.prm_init)."""

import pytest
import torch
from test_er_pipeline import learnable_records, quick_exact_config
from transformers import AutoModelForCausalLM

from reasoner.models.hf_prm import HFPRM
from reasoner.models.kv_reuse import growing_cache
from reasoner.models.resolve import load_causal_lm
from reasoner.training.prm_config import LMPRMTrainConfig
from reasoner.training.prm_init import append_identity_layers
from reasoner.training.prm_trainer import train_prm
from reasoner.types import ReasonerError


def test_appended_layers_leave_every_logit_unchanged_and_reload(tiny_ckpt, tmp_path):
    model = load_causal_lm(tiny_ckpt, "float32").eval()
    ids = torch.randint(3, 250, (2, 17), generator=torch.Generator().manual_seed(0))
    before = model(input_ids=ids).logits
    append_identity_layers(model, 2)
    assert model.config.num_hidden_layers == 4 and len(model.model.layers) == 4
    after = model(input_ids=ids).logits
    assert torch.equal(before, after)
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_layers == 4
    assert torch.allclose(again(input_ids=ids).logits, after, atol=1e-6)


def test_new_layers_train_and_have_their_own_kv_cache_slot(tiny_ckpt):
    model = load_causal_lm(tiny_ckpt, "float32")
    append_identity_layers(model, 1)
    new = model.model.layers[-1]
    assert new.self_attn.layer_idx == 2 and new.self_attn.o_proj.weight.abs().sum() == 0
    ids = torch.randint(3, 250, (1, 12), generator=torch.Generator().manual_seed(1))
    model(input_ids=ids).logits.sum().backward()
    assert new.self_attn.o_proj.weight.grad.abs().sum() > 0  # zero-init is not a dead end
    # perturb the new layer so it matters, then check incremental decoding against a full pass
    with torch.no_grad():
        new.self_attn.o_proj.weight.normal_(0, 0.1)
        new.mlp.down_proj.weight.normal_(0, 0.1)
    model.eval()
    full = model(input_ids=ids).logits
    cache = growing_cache()
    head = model(input_ids=ids[:, :7], past_key_values=cache, use_cache=True)
    tail = model(input_ids=ids[:, 7:], past_key_values=head.past_key_values, use_cache=True)
    assert len(tail.past_key_values.layers) == 3
    assert torch.allclose(tail.logits, full[:, 7:], atol=1e-5)


def test_bad_extra_layers_are_clear_errors(tiny_ckpt):
    model = load_causal_lm(tiny_ckpt, "float32")
    with pytest.raises(ReasonerError, match="extra_layers must be >= 0"):
        append_identity_layers(model, -1)
    with pytest.raises(ReasonerError, match="LLaMA-style"):
        append_identity_layers(torch.nn.Linear(2, 2), 1)


def test_trainer_freezes_the_base_and_ships_the_deeper_untied_prm(tiny_ckpt, tmp_path):
    """freeze_base trains only the appended layers and the head; the checkpoint loads as is."""
    cfg = quick_exact_config(tiny_ckpt, tmp_path / "prm", extra_layers=1, freeze_base=True)
    final = train_prm(cfg, records=learnable_records(40), progress=False)
    base, prm = load_causal_lm(tiny_ckpt, "float32"), HFPRM(final).model
    assert prm.config.num_hidden_layers == 3 and not prm.config.tie_word_embeddings
    for name, p in base.model.layers.state_dict().items():  # the policy's layers: untouched
        assert torch.allclose(prm.model.layers.state_dict()[name].float(), p, atol=1e-3), name
    assert not torch.equal(prm.lm_head.weight.float(), prm.model.embed_tokens.weight.float())


def test_freeze_base_without_extra_layers_is_an_error(tiny_ckpt, tmp_path):
    common = {"base": str(tiny_ckpt), "out_dir": str(tmp_path / "p"), "label": "hard", "eta": None}
    with pytest.raises(ReasonerError, match="freeze_base needs extra_layers"):
        LMPRMTrainConfig(**common, freeze_base=True)
    cfg = LMPRMTrainConfig(**common)
    cfg.freeze_base = True  # edited after construction: checked again before any work
    with pytest.raises(ReasonerError, match="freeze_base needs extra_layers"):
        train_prm(cfg, records=learnable_records(8), progress=False)
    assert not (tmp_path / "p").exists()

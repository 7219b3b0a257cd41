"""The #16 groundwork: tiny checkpoints of every real PRM family load with transformers, and each
family's reference scorer (written from its model card, tests/prm_families/SPEC.md) gives one finite
score per step, deterministically, reading the documented ids and positions.

Math-Shepherd needs PyPI mistral-common for the real Mistral-7B tokenizer; those tests skip without it.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from conftest import prm_family
from prm_families import references, tiny_models
from prm_families.checkpoint_io import read_weights, write_weights
from prm_families.families import FAMILIES
from prm_families.tiny_tokenizers import MISTRAL_COMMON_HINT, mistral_sentencepiece_path
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

QUESTION = (
    "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins with four. She sells the rest for $2 each. How much does she make every day?"
)
STEPS = [
    "Step 1: Janet's ducks lay 16 eggs per day.",
    "Step 2: She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left.",
    "Step 3: She makes 9 * 2 = 18 dollars. The answer is: 18",
]
# The Math-Shepherd card's own example (question and the correct "output1").
CARD_QUESTION = (
    "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' "
    "market?"
)
CARD_OUTPUT = (
    "Step 1: Janet's ducks lay 16 eggs per day. ки\nStep 2: She eats three for breakfast every "
    "morning, so she has 16 - 3 = 13 eggs left. ки\nStep 3: She bakes muffins for her friends every "
    "day with four eggs, so she has 13 - 4 = 9 eggs left. ки\nStep 4: She sells the remainder at the "
    "farmers' market daily for $2 per fresh duck egg, so she makes 9 * $2 = $18 every day at the "
    "farmers' market. The answer is: 18 ки"
)

needs_mistral = pytest.mark.skipif(mistral_sentencepiece_path() is None, reason=MISTRAL_COMMON_HINT)

# config.json facts of each real checkpoint that the tiny one must carry.
ARCHITECTURES = {
    "math-shepherd": ("mistral", ["MistralForCausalLM"]),
    "rlhflow": ("llama", ["LlamaForCausalLM"]),
    "qwen2.5-math-prm": ("qwen2", ["Qwen2ForProcessRewardModel"]),
    "skywork-prm": ("qwen2", ["Qwen2ForPrmModel"]),
    "er-prm": ("llama", ["CustomLlamaForCausalLM"]),
}
WEIGHT_FILES = {
    "math-shepherd": {"pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json"},
    "rlhflow": {"model-00001-of-00002.safetensors", "model.safetensors.index.json"},
    "qwen2.5-math-prm": {"model-00001-of-00002.safetensors", "model.safetensors.index.json"},
    "skywork-prm": {"pytorch_model.bin"},
    "er-prm": {"model-00001-of-00002.safetensors", "model.safetensors.index.json"},
}
CAUSAL_LM_FAMILIES = ["math-shepherd", "rlhflow", "er-prm"]


@pytest.fixture(scope="module")
def loaded(prm_family_ckpt):
    """name -> the family's (model, tokenizer) from its reference loader, loaded once."""
    return functools.cache(lambda name: FAMILIES[name].load(prm_family_ckpt(name)))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_reference_gives_one_finite_score_per_step_deterministically(name, loaded):
    model, tok = loaded(name)
    scores = FAMILIES[name].score(model, tok, QUESTION, STEPS)
    assert len(scores) == len(STEPS)
    assert all(math.isfinite(s) and 0.0 < s < 1.0 for s in scores), scores
    assert max(scores) - min(scores) > 1e-3, f"{name}: scores barely differ, a weak golden test"
    assert FAMILIES[name].score(model, tok, QUESTION, STEPS) == scores


@pytest.mark.parametrize("name", list(FAMILIES))
def test_same_seed_same_checkpoint_other_seed_other_scores(name, loaded, tmp_path):
    family = prm_family(name)
    first = family.score(*loaded(name), QUESTION, STEPS)
    again = family.score(*family.load(family.build(tmp_path / "same", seed=0)), QUESTION, STEPS)
    other = family.score(*family.load(family.build(tmp_path / "other", seed=1)), QUESTION, STEPS)
    assert again == first
    assert max(abs(a - b) for a, b in zip(first, other)) > 1e-3


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checkpoint_dir_looks_like_the_real_one(name, prm_family_ckpt):
    ckpt = prm_family_ckpt(name)
    model_type, architectures = ARCHITECTURES[name]
    config = json.loads((ckpt / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == (model_type, architectures)
    assert WEIGHT_FILES[name] <= {p.name for p in ckpt.iterdir()}
    # plain transformers reads the config (auto_map present, no remote code run) and the tokenizer
    assert AutoConfig.from_pretrained(ckpt).model_type == model_type
    assert len(AutoTokenizer.from_pretrained(ckpt)) == config["vocab_size"]


def test_head_weight_names_are_the_real_ones(prm_family_ckpt):
    qwen = read_weights(prm_family_ckpt("qwen2.5-math-prm"))
    head = {k for k in qwen if not k.startswith("model.")}
    assert head == {"score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"}
    hidden = tiny_models.TINY_DIMS["hidden_size"]
    assert qwen["score.0.weight"].shape == (hidden, hidden)
    assert qwen["score.2.weight"].shape == (2, hidden)
    sky = read_weights(prm_family_ckpt("skywork-prm"))
    assert {k for k in sky if not k.startswith("model.")} == {
        "lm_head.weight",
        "v_head.summary.weight",
        "v_head.summary.bias",
    }
    assert sky["v_head.summary.weight"].shape == (1, hidden)
    assert json.loads((prm_family_ckpt("qwen2.5-math-prm") / "config.json").read_text())["auto_map"]


@pytest.mark.parametrize("name", CAUSAL_LM_FAMILIES)
def test_causal_lm_families_load_with_from_pretrained(name, prm_family_ckpt, loaded):
    """The card loads these with AutoModelForCausalLM: same logits as the reference's strict load."""
    ref_model, tok = loaded(name)
    hf_model = AutoModelForCausalLM.from_pretrained(prm_family_ckpt(name)).eval()
    ids = torch.tensor([tok.encode(QUESTION)])
    with torch.no_grad():
        assert torch.equal(hf_model(ids).logits, ref_model(ids).logits)


def test_a_dropped_head_fails_the_reference_load(prm_family_ckpt, tmp_path):
    """The references never score with a random head: a checkpoint without score.* is an error."""
    src = prm_family_ckpt("qwen2.5-math-prm")
    for path in src.iterdir():
        if not path.name.startswith("model"):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    state = {k: v for k, v in read_weights(src).items() if not k.startswith("score.")}
    write_weights(tmp_path, state, fmt="safetensors", shards=1)
    with pytest.raises(ValueError, match=r"missing keys \['score\.0\.weight'"):
        references.load_qwen_math_prm(tmp_path)


def test_bin_and_safetensors_checkpoints_score_alike(loaded, tmp_path):
    bin_scores = references.score_skywork_prm(*loaded("skywork-prm"), QUESTION, STEPS)
    st_dir = tiny_models.build_skywork_prm(tmp_path, fmt="safetensors", shards=2)
    assert references.score_skywork_prm(*references.load_skywork_prm(st_dir), QUESTION, STEPS) == (
        bin_scores
    )


def test_a_step_holding_the_tag_is_refused(loaded):
    with pytest.raises(ValueError, match="4 readout positions for 3 steps"):
        references.score_qwen_math_prm(
            *loaded("qwen2.5-math-prm"), QUESTION, ["a<extra_0>b", "c", "d"]
        )


# ------------------------------------------------------------------ Math-Shepherd, real tokenizer


@needs_mistral
def test_math_shepherd_ids_are_the_cards(loaded):
    _, tok = loaded("math-shepherd")
    assert tok.encode("+ -") == [1, 648, 387]  # the card: encode(f"{good} {bad}")[1:] == [648, 387]
    assert tok.encode("ки")[-1] == 12902  # the card: encode(step_tag)[-1] == 12902
    assert tok.convert_ids_to_tokens([12902, 648, 387]) == ["▁ки", "▁+", "▁-"]
    # the ids without sentencepiece's word-start marker, which a per-piece reader ends up with
    assert tok.convert_ids_to_tokens([1107, 28806, 28733]) == ["ки", "+", "-"]


@needs_mistral
def test_math_shepherd_tokenizes_the_whole_string(loaded):
    """The card encodes question + output at once: after each tag comes <0x0A> then 'Step' (no
    dummy-prefix '▁'); encoding the pieces on their own inserts a '▁' before every piece."""
    _, tok = loaded("math-shepherd")
    ids = tok.encode(f"{CARD_QUESTION} {CARD_OUTPUT}")
    tokens = tok.convert_ids_to_tokens(ids)
    tags = [i for i, t in enumerate(ids) if t == 12902]
    assert len(tags) == 4 and tags[-1] == len(ids) - 1
    assert all(tokens[i + 1 : i + 3] == ["<0x0A>", "Step"] for i in tags[:-1])

    def pieces(text: str) -> list[str]:
        return tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))

    assert pieces("ки \nStep") == ["▁ки", "▁", "<0x0A>", "Step"]
    assert pieces("ки ") + pieces("\nStep") == ["▁ки", "▁", "▁", "<0x0A>", "Step"]


@needs_mistral
def test_math_shepherd_reference_reads_every_card_tag(loaded):
    model, tok = loaded("math-shepherd")
    steps = CARD_OUTPUT.split(" ки\n")
    steps[-1] = steps[-1].removesuffix(" ки")
    assert len(references.score_math_shepherd(model, tok, CARD_QUESTION, steps)) == 4


# ------------------------------------------------------------------ the other families' formats


def test_rlhflow_reads_the_token_before_the_assistant_plus(loaded):
    _, tok = loaded("rlhflow")
    conversation = [
        {"role": "user", "content": f"{QUESTION} {STEPS[0]}"},
        {"role": "assistant", "content": "+"},
    ]
    ids = references._chat_input_ids(tok, conversation)[0].tolist()
    assert ids.count(tok.bos_token_id) == 1  # the template's BOS only, none added on top
    assert tok.convert_ids_to_tokens(ids[-3:]) == ["ĊĊ", "+", "<|eot_id|>"]
    assert ids[-2] == tok.encode("+")[-1]
    text = tok.apply_chat_template(conversation, tokenize=False)
    assert "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" in text


def test_qwen_prm_template_keeps_the_boxed_braces(loaded):
    _, tok = loaded("qwen2.5-math-prm")
    messages = [
        {"role": "system", "content": references.QWEN_PRM_SYSTEM},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "a<extra_0>b<extra_0>"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|im_start|>system\nPlease reason step by step, and put your final")
    assert "within \\boxed{}.<|im_end|>\n<|im_start|>user\n" in text
    assert text.endswith("<|im_start|>assistant\na<extra_0>b<extra_0><|im_end|>\n")
    assert len(tok.encode("<extra_0>")) == 1 and tok.bos_token is None


def test_skywork_tokenizes_piece_by_piece_after_its_bos(loaded):
    _, tok = loaded("skywork-prm")
    assert tok.bos_token == "<|im_start|>"
    prompt = tok.encode(tok.bos_token + QUESTION + "\n")
    assert prompt[0] == tok.convert_tokens_to_ids("<|im_start|>")
    newline = tok.encode("\n")
    assert len(newline) == 1 and tok.encode("") == []
    # a step's own ids never hold the separator, so each step's reward sits on the id appended to it
    assert all(newline[0] not in tok.encode(s) for s in STEPS)


def test_er_prm_tag_and_labels_are_single_tokens(loaded):
    _, tok = loaded("er-prm")
    for text in (references.ER_TAG, references.ER_GOOD, references.ER_BAD):
        ids = tok.encode(text)
        assert ids[0] == tok.bos_token_id and len(ids) == 2, (text, ids)
    text = "\n".join(f"{s}{references.ER_TAG}" for s in STEPS).replace(" ки\n", " ки")
    assert "ки\n" not in text and text.count("ки") == len(STEPS)

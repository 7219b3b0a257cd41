"""Golden tests, issue #16: every real PRM family scored by `load_prm(dir, backend, "<preset>")`
exactly as its model card scores it, and no checkpoint ever scored with weights it lacks.

For each family a tiny random checkpoint of its architecture, in its real on-disk layout
(tests/prm_families/tiny_models.py), is scored by the product and by the reference scorer written
from the card (tests/prm_families/references.py, SPEC.md): equal to 1e-5 on cases with newlines,
braces and unicode in the steps. Then the bad inputs: a dropped head, the wrong preset, ids that
are not the card's, a tag that merges with its neighbours, a user's own family file.

The vLLM tests (marked `vllm`) run with `.venv-vllm/bin/pytest -q -m vllm
tests/test_prm_families_golden.py`: vLLM serves Math-Shepherd, ER-PRM and RLHFlow (STEP pooling
on the converted LM head) and Qwen2.5-Math-PRM (its native model); Skywork's value head it cannot
(an error before any engine, tested without vLLM).
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sys
from pathlib import Path

import pytest
from prm_families import references, tiny_models
from prm_families.checkpoint_io import read_weights, write_weights
from prm_families.families import FAMILIES

from reasoner.api import load_prm
from reasoner.models.base import ScoreRequest
from reasoner.models.hf_prm import HFPRM
from reasoner.models.prm_input import PRMInputBuilder
from reasoner.step_format import PRESETS, PRMFormat, StepFormat, get_step_format
from reasoner.types import ReasonerError

QUESTION = (
    "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with "
    "four. She sells the rest for $2 each. How much does she make every day?"
)
STEPS = [
    "Step 1: Janet's ducks lay 16 eggs per day.",
    "Step 2: She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left.",
    "Step 3: She makes 9 * 2 = 18 dollars. The answer is: 18",
]
CASES = [
    (QUESTION, STEPS),
    (QUESTION, STEPS[:1]),
    # newlines inside a step, braces (a format field would crash str.format), unicode
    (
        "Solve {x}: what is f(2) if f(x) = x\u00b2 + {1}? Use \\boxed{}.",
        [
            "We have f(x) = x\u00b2 + 1.\nSo f(2) = 4 + 1.",
            "Hence {f(2)} = 5, i.e. \\boxed{5} \u2014 d\u00e9j\u00e0 vu \u6570\u5b66.",
            "  The answer is 5.  ",
        ],
    ),
]
TOLERANCE = 1e-5


def card_scores(name: str, model, tok, question: str, steps: list[str]) -> list[float]:
    """The reference scorer's scores of the steps as the product feeds them (stripped where the
    preset strips them)."""
    if get_step_format(name).prm_format.strip_steps:
        steps = [s.strip() for s in steps]
    if name != "skywork-prm":
        return FAMILIES[name].score(model, tok, question, steps)
    # Skywork's card splits the response at every "\n" and scores each piece: a step with
    # newlines is several pieces, and its score is its last piece's
    pieces, last = [], []
    for step in steps:
        pieces += step.split("\n")
        last.append(len(pieces) - 1)
    values = references.score_skywork_prm(model, tok, question, pieces)
    return [values[i] for i in last]


@pytest.fixture(scope="module")
def reference(prm_family_ckpt):
    """The card's scores of (question, steps), from the reference loader (once per family)."""
    loaded = functools.cache(lambda name: FAMILIES[name].load(prm_family_ckpt(name)))

    def score(name: str, question: str, steps: list[str]) -> list[float]:
        return card_scores(name, *loaded(name), question, steps)

    return score


@pytest.fixture(scope="module")
def product(prm_family_ckpt):
    """load_prm(dir, "hf", "<preset>") for each family, loaded once."""
    return functools.cache(lambda name: load_prm(str(prm_family_ckpt(name)), "hf", name))


# ---------------------------------------------------------------------------------- golden


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_load_prm_scores_as_the_card(name, case, product, reference):
    question, steps = CASES[case]
    prm = product(name)
    assert isinstance(prm, HFPRM) and prm.builder.format.name == name
    want = reference(name, question, steps)
    [got], tokens = prm.score([ScoreRequest(question, steps)])
    assert len(got) == len(steps) and tokens > 0
    assert got == pytest.approx(want, abs=TOLERANCE), (name, got, want)
    assert max(want) - min(want) > 1e-3 or len(steps) == 1  # a weak case would prove nothing


@pytest.mark.parametrize("name", list(FAMILIES))
def test_batching_and_prefix_reuse_do_not_change_scores(name, prm_family_ckpt, product, reference):
    """Chains scored together, and children scored after their parents (their KV reused), give
    the card's scores; the children encode fewer tokens than cold ones."""
    warm = product(name)
    warm.clear_cache()
    cold = load_prm(str(prm_family_ckpt(name)), "hf", name, prefix_cache_mb=0)
    question, steps = CASES[2]
    chains = [ScoreRequest(question, steps[:k]) for k in range(1, len(steps) + 1)]
    chains.append(ScoreRequest(QUESTION, STEPS))
    together, _ = cold.score(chains)
    for chain, got in zip(chains, together):
        assert got == pytest.approx(reference(name, chain.problem, chain.steps), abs=TOLERANCE)
    spent_cold = spent_warm = 0
    for chain in chains[:3]:  # parent, then child, then grandchild
        [a], cold_tokens = cold.score([chain])
        [b], warm_tokens = warm.score([chain])
        assert b == pytest.approx(a, abs=TOLERANCE)
        spent_cold, spent_warm = spent_cold + cold_tokens, spent_warm + warm_tokens
    assert spent_warm < spent_cold


def test_the_cards_ids_and_positions(prm_family_ckpt, product):
    """What each family reads, as its card names it."""
    shepherd = product("math-shepherd")
    tok = shepherd.tokenizer
    # the ids of Math-Shepherd's card (the real Mistral-7B tokenizer): ▁ки, ▁+, ▁-
    assert (shepherd.builder.tag_id, shepherd.builder.pos_id, shepherd.builder.neg_id) == (
        12902,
        648,
        387,
    )
    ids, readouts = shepherd.builder.build(QUESTION, STEPS)
    output = "\n".join(f"{s} ки" for s in STEPS)
    assert ids == tok.encode(f"{QUESTION} {output}")  # the whole string at once, BOS added
    assert [ids[t] for t in readouts] == [12902] * 3
    # the per-piece reading issue #16 found reads other tokens: ки 1107 and + 28806
    pieces = PRMInputBuilder(tok, StepFormat(step_tag="ки", prm_prompt_template="{problem} "))
    assert (pieces.tag_id, pieces.pos_id) == (1107, 28806)

    rlhflow = product("rlhflow")
    ids, readouts = rlhflow.builder.build(QUESTION, STEPS)
    toks = rlhflow.tokenizer.convert_ids_to_tokens(ids)
    assert ids.count(rlhflow.tokenizer.bos_token_id) == 1  # the template's BOS, none on top
    assert all(toks[t : t + 3] == ["ĊĊ", "+", "<|eot_id|>"] for t in readouts)

    qwen = product("qwen2.5-math-prm")
    ids, readouts = qwen.builder.build(QUESTION, STEPS)
    assert [ids[t] for t in readouts] == [qwen.tokenizer.convert_tokens_to_ids("<extra_0>")] * 3
    assert qwen.builder.pos_id is None and not list(
        prm_family_ckpt("qwen2.5-math-prm").glob("*.py")
    )

    sky = product("skywork-prm")
    ids, readouts = sky.builder.build(QUESTION, STEPS)
    assert ids[0] == sky.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert [ids[t] for t in readouts] == sky.tokenizer.encode("\n") * 3


def test_bin_and_safetensors_shards_score_alike(tmp_path, product):
    """Real checkpoints ship as safetensors shards or pytorch_model*.bin: heads load from both."""
    for name, build, fmt in (
        ("skywork-prm", tiny_models.build_skywork_prm, "safetensors"),
        ("qwen2.5-math-prm", tiny_models.build_qwen_math_prm, "bin"),
    ):
        other = load_prm(str(build(tmp_path / name, fmt=fmt, shards=2)), "hf", name)
        [want], _ = product(name).score([ScoreRequest(QUESTION, STEPS)])
        [got], _ = other.score([ScoreRequest(QUESTION, STEPS)])
        assert got == pytest.approx(want, abs=1e-6)


def test_presets_are_step_formats_too():
    """Each family is a --step-format preset (its PRM side the family's PRMFormat)."""
    for name in FAMILIES:
        assert get_step_format(name).prm_format.name == name
    assert PRESETS["qwen2.5-math-prm"].prm_format.system_prompt.endswith("\\boxed{}.")
    # the flat fields of our own PRMs keep their meaning (embedded-lm, train-prm checkpoints)
    legacy = StepFormat().prm_format
    assert (legacy.layout, legacy.tokenize, legacy.step_tag) == ("text", "pieces", "<|step|>")


# ---------------------------------------------------------------------------------- no silent noise


def _copy_without(src: Path, dst: Path, drop: str, fmt: str) -> Path:
    dst.mkdir()
    for path in src.iterdir():
        if not path.name.startswith(("model", "pytorch_model")):
            shutil.copy(path, dst / path.name)
    state = {k: v for k, v in read_weights(src).items() if not k.startswith(drop)}
    write_weights(dst, state, fmt=fmt, shards=1)
    return dst


@pytest.mark.parametrize(
    "name, drop, fmt, keys",
    [
        ("qwen2.5-math-prm", "score.", "safetensors", r"score\.0\.weight, score\.0\.bias"),
        ("skywork-prm", "v_head.", "bin", r"v_head\.summary\.weight, v_head\.summary\.bias"),
    ],
)
def test_a_dropped_head_fails_to_load_naming_the_keys(
    name, drop, fmt, keys, prm_family_ckpt, tmp_path
):
    broken = _copy_without(prm_family_ckpt(name), tmp_path / "broken", drop, fmt)
    with pytest.raises(ReasonerError, match=rf"the weights lack {keys}.*head is missing"):
        load_prm(str(broken), "hf", name)


@pytest.mark.parametrize(
    "name, preset, message",
    [
        # no format given: the checkpoint's architecture names its family
        ("qwen2.5-math-prm", None, r"names Qwen2ForProcessRewardModel.*'qwen2.5-math-prm'"),
        ("qwen2.5-math-prm", "math-shepherd", r"preset 'qwen2.5-math-prm'"),
        ("skywork-prm", "qwen2.5-math-prm", r"names Qwen2ForPrmModel.*preset 'skywork-prm'"),
        ("skywork-prm", "er-prm", r"preset 'skywork-prm'"),
        # a tag this tokenizer splits: the checkpoint, the format, the tag and its ids
        (
            "rlhflow",
            "qwen2.5-math-prm",
            r"PRM checkpoint .*rlhflow.*: PRM format 'qwen2.5-math-prm': PRM step tag "
            r"'<extra_0>' is \d+ tokens for this tokenizer, not one: ids \[",
        ),
        (
            "rlhflow",
            "skywork-prm",
            r"lack v_head\.summary\.weight.*causal LM.*math-shepherd, rlhflow, er-prm",
        ),
    ],
)
def test_the_wrong_preset_is_an_error_naming_the_one_that_fits(
    name, preset, message, prm_family_ckpt
):
    with pytest.raises(ReasonerError, match=message):
        load_prm(str(prm_family_ckpt(name)), "hf", preset)


def test_weights_the_model_does_not_use_are_an_error(prm_family_ckpt, tmp_path):
    """A Qwen PRM whose config was renamed to a causal LM: transformers would drop score.* and
    initialise lm_head at random; we name both and the preset."""
    ckpt = tmp_path / "renamed"
    shutil.copytree(prm_family_ckpt("qwen2.5-math-prm"), ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["architectures"] = ["Qwen2ForCausalLM"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ReasonerError,
        match=r"lack lm_head\.weight and hold score\.0\.bias.*not use; .*preset 'qwen2.5-math-prm'",
    ):
        load_prm(str(ckpt), "hf", {"prm": "er-prm"})


def test_ids_other_than_the_cards_are_an_error_naming_both(prm_family_ckpt):
    tok = load_prm(str(prm_family_ckpt("math-shepherd")), "hf", "math-shepherd").tokenizer
    card = PRMFormat(name="card", prompt="{problem} ", step_tag=" ки", step_tag_id=12902)
    assert PRMInputBuilder(tok, card).tag_id == 12902
    with pytest.raises(ReasonerError, match=r"'ки' is id 1107 \('ки'\).*names id 12902 \('▁ки'\)"):
        PRMInputBuilder(tok, PRMFormat(step_tag="ки", tokenize="pieces", step_tag_id=12902))
    with pytest.raises(ReasonerError, match=r"'\+' is id 648 \('▁\+'\).*names id 28806"):
        PRMInputBuilder(tok, PRMFormat(step_tag=" ки", positive_id=28806))
    with pytest.raises(ReasonerError, match=r"step tag 'ки\+' is 2 tokens.*\['▁ки', '\+'\]"):
        PRMInputBuilder(tok, PRMFormat(step_tag="ки+"))


def test_a_tag_that_merges_with_its_neighbours_is_an_error(prm_family_ckpt):
    """Encoded whole, a tag can fuse with the text around it; reading there would read noise
    (Math-Shepherd's card itself misses the tag of a step that ends in spaces)."""
    tok = load_prm(str(prm_family_ckpt("math-shepherd")), "hf", "math-shepherd").tokenizer
    unstripped = PRMInputBuilder(tok, PRMFormat(name="raw", prompt="{problem} ", step_tag=" ки"))
    with pytest.raises(ReasonerError, match=r"'raw': the step tag ' ки' \(id 12902, '▁ки'\)"):
        unstripped.build("Q?", ["ends in spaces  "])
    assert PRESETS["math-shepherd"].prm_format.strip_steps  # so the preset strips its steps


def test_a_tag_fused_with_a_word_is_an_error(prm_family_ckpt):
    tok = load_prm(str(prm_family_ckpt("er-prm")), "hf", "er-prm").tokenizer
    fmt = PRMFormat(name="fused", prompt="{problem} ", step_tag="s", positive_token=" +")
    assert len(tok.encode("s", add_special_tokens=False)) == 1
    builder = PRMInputBuilder(tok, PRMFormat(name="ok", prompt="{problem} ", step_tag=" ки"))
    assert len(builder.build("Q?", ["eggs"])[1]) == 1
    with pytest.raises(ReasonerError, match=r"'fused': the step tag 's' .* not come out as one"):
        PRMInputBuilder(tok, fmt).build("Q?", ["She eat"])


def test_no_format_crashes_on_braces(product):
    """Literal braces in templates and steps are text: only {problem} is substituted."""
    prm = product("qwen2.5-math-prm")
    text = prm.tokenizer.decode(prm.builder.build("What is {0} + {}?", ["{1}"])[0])
    assert "within \\boxed{}." in text and "What is {0} + {}?" in text


# ---------------------------------------------------------------------------------- a user's family


def test_a_users_family_is_one_toml_file(prm_family_ckpt, product, tmp_path):
    """Math-Shepherd's fields written as a user would: same scores as the preset."""
    path = tmp_path / "my_prm.toml"
    path.write_text(
        "max_steps = 30\n\n[prm]\n"
        'name = "mine"\nprompt = "{problem} "\nstep_tag = " ки"\nstep_joiner = "\\n"\n'
        "strip_steps = true\n"
        'tokenize = "whole"\nreadout = "lm-labels"\npositive_token = "+"\nnegative_token = "-"\n'
        "step_tag_id = 12902\n"
    )
    mine = load_prm(str(prm_family_ckpt("math-shepherd")), "hf", str(path))
    assert mine.step_format.max_steps == 30 and mine.builder.format.name == "mine"
    request = [ScoreRequest(*CASES[2])]
    want = product("math-shepherd").score(request)[0][0]
    assert mine.score(request)[0][0] == pytest.approx(want, abs=1e-6)
    # the same as JSON (what a checkpoint's step_format.json holds)
    as_json = tmp_path / "my_prm.json"
    as_json.write_text(json.dumps(get_step_format(str(path)).to_dict()))
    assert get_step_format(str(as_json)) == get_step_format(str(path))


@pytest.mark.parametrize(
    "table, message",
    [
        ('step_tagg = " ки"', r"unknown key\(s\) \['step_tagg'\] \(did you mean 'step_tag'\?\)"),
        ("add_bos = 1", r"add_bos must be true or false"),
        ('readout = "logits"', r"readout must be one of 'lm-labels', 'token-class', 'value-head'"),
        ('layout = "turns"\nstep_tag = "x"', r"layout 'turns' needs an assistant_turn"),
        ('prompt = "no field"\nstep_tag = "x"', r"prompt must contain '\{problem\}'"),
    ],
)
def test_a_bad_family_file_names_the_key(table, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f"[prm]\n{table}\n")
    with pytest.raises(ReasonerError, match=message):
        get_step_format(str(path))


def test_a_step_format_with_both_prm_spellings_is_refused():
    with pytest.raises(ReasonerError, match=r"given twice, as prm and as \['step_tag'\]"):
        StepFormat(step_tag="ки", prm="math-shepherd")
    with pytest.raises(ReasonerError, match="unknown PRM format 'nope'; presets: er-prm"):
        StepFormat(prm="nope")


# ---------------------------------------------------------------------------------- vLLM

VLLM_FAMILIES = ["math-shepherd", "er-prm", "rlhflow", "qwen2.5-math-prm"]
# vLLM's CPU attention needs a head size of 32 or more
VLLM_DIMS = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4}


@contextlib.contextmanager
def _dims(**dims):
    saved = dict(tiny_models.TINY_DIMS)
    tiny_models.TINY_DIMS.update(dims)
    try:
        yield
    finally:
        tiny_models.TINY_DIMS.clear()
        tiny_models.TINY_DIMS.update(saved)


def test_vllm_cannot_serve_a_value_head_and_says_so(prm_family_ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # the error comes before any engine
    with pytest.raises(ReasonerError, match=r"vLLM cannot serve a value-head PRM.*backend 'hf'"):
        load_prm(str(prm_family_ckpt("skywork-prm")), "vllm", "skywork-prm")


@pytest.fixture(scope="module")
def vllm_checkpoints(tmp_path_factory):
    out = {}
    with _dims(**VLLM_DIMS):
        for name in VLLM_FAMILIES:
            family = FAMILIES[name]
            if family.missing() is None:
                out[name] = family.build(tmp_path_factory.mktemp(f"vllm-{name}"))
    return out


@pytest.mark.vllm
@pytest.mark.parametrize("name", VLLM_FAMILIES)
def test_vllm_scores_as_the_card(name, vllm_checkpoints):
    if name not in vllm_checkpoints:
        pytest.skip(FAMILIES[name].missing())
    ckpt = vllm_checkpoints[name]
    model, tok = FAMILIES[name].load(ckpt)
    prm = load_prm(str(ckpt), "vllm", name, threads=1)
    try:
        requests = [ScoreRequest(q, s) for q, s in CASES]
        got, tokens = prm.score(requests)
        assert tokens == sum(len(prm.builder.build(r.problem, r.steps)[0]) for r in requests)
        for (question, steps), values in zip(CASES, got):
            want = card_scores(name, model, tok, question, steps)
            assert values == pytest.approx(want, abs=TOLERANCE), (name, values, want)
            assert max(want) - min(want) > 1e-3 or len(steps) == 1, want  # not saturated
        assert prm.score([]) == ([], 0)
    finally:
        del prm

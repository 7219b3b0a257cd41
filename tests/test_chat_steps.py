"""Chat-model steps and visible truncation: step markers split steps, a cut chain is "truncated".

A chat model writes single "\\n" between sentences and its own "Step k:" markers, so the "chat"
preset also starts a step at a line that opens with a marker. A chain a cap cut (max_steps,
max_step_tokens, the depth limit, the context) is never reported "finished" and its last number is
not graded: the search that picks it stops with reason "truncated" and answer None.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_step_rules import NEWLINE, WORDS, as_tuple, hf_replay, scripted_vllm_policy

from benchmarks.report import _capped_section
from reasoner import Reasoner
from reasoner.cli import main
from reasoner.controller import is_cut
from reasoner.models import resolve
from reasoner.models.base import GenRequest
from reasoner.models.resolve import detect_gguf, embedded_dir, load_step_format, load_tokenizer
from reasoner.models.step_rules import StepRules, start_rows
from reasoner.step_format import PRESETS, StepFormat, get_step_format
from reasoner.types import ReasonerError

TOKENIZER = load_tokenizer(embedded_dir("policy"))
EOS = TOKENIZER.eos_token_id
CHAT = dataclasses.replace(PRESETS["chat"], use_chat_template=False)  # the embedded has none
PROBLEM = (  # arith test problem 0: six steps
    "Liam has 165 balloons. He loses 142 balloons on the way home. Liam gets 131 more balloons "
    "from Mia. Liam gives 132 balloons to Mia. He finds 43 more balloons. He trades away 32 "
    "balloons. How many balloons does Liam have now?"
)


def replay(fmt: StepFormat, text: str, mode: str = "end", eos: bool = True):
    """The continuation the step rules make of `text`'s tokens (then EOS), one token at a time."""
    script = TOKENIZER.encode(text, add_special_tokens=False) + ([EOS] if eos else [])
    rules = StepRules(TOKENIZER, fmt, {EOS})
    [row] = start_rows([GenRequest([1], 1, 0, mode, 0.0)], fmt, 512)
    for i, tok in enumerate(script):
        if not rules.advance(row, tok, -0.125 * (i % 3 + 1)):
            break
    return row, script


def test_chat_preset_splits_at_step_markers_and_keeps_the_prefix_exact():
    text = "Step 1: 3 * 4 = 12.\nThen add.\nStep 2: 2 + 12 = 14.\n**Step 3:** The answer is 14."
    row, script = replay(CHAT, text)
    cont = row.cont
    assert [s.text for s in cont.steps] == [
        "Step 1: 3 * 4 = 12.\nThen add.",
        "Step 2: 2 + 12 = 14.",
        "**Step 3:** The answer is 14.",
    ]
    assert cont.finished and not cont.truncated
    assert [t for s in cont.steps for t in s.token_ids] == script  # nothing dropped or re-made
    want = sum(-0.125 * (i % 3 + 1) for i in range(len(script)))
    assert sum(s.logprob for s in cont.steps) == pytest.approx(want, abs=1e-12)


def test_a_marker_step_in_step_mode_stops_before_the_marker():
    row, script = replay(CHAT, "Step 1: 3 * 4 = 12.\nStep 2: 2 + 12 = 14.", mode="step")
    [step] = row.cont.steps
    assert step.text == "Step 1: 3 * 4 = 12."
    assert row.ended_step and row.step_ids  # the marker's ids are past the step, not in it
    assert step.token_ids + row.step_ids == script[: row.cont.new_tokens]


def test_without_markers_a_single_newline_does_not_split():
    fmt = dataclasses.replace(CHAT, step_markers="")
    row, _ = replay(fmt, "Step 1: 3 * 4 = 12.\nStep 2: 2 + 12 = 14.")
    assert [s.text for s in row.cont.steps] == ["Step 1: 3 * 4 = 12.\nStep 2: 2 + 12 = 14."]


def test_step_markers_field_is_checked_and_saved_only_when_set():
    assert "step_markers" not in PRESETS["arith"].to_dict()  # step_format.json as ever
    assert StepFormat.from_dict(PRESETS["chat"].to_dict()) == PRESETS["chat"]
    with pytest.raises(ReasonerError, match="step_markers is not a valid regex"):
        StepFormat(step_markers="Step (")
    assert get_step_format("chat").use_chat_template


def small_caps(**caps) -> StepFormat:
    return dataclasses.replace(load_step_format(embedded_dir("policy"), None), **caps)


@pytest.mark.parametrize("caps", [{"max_steps": 1}, {"max_step_tokens": 3}])
def test_a_cut_chain_is_truncated_never_finished(caps):
    reasoner = Reasoner("majority", budget=3, prm=None, step_format=small_caps(**caps))
    sol = reasoner.solve(PROBLEM)
    assert sol.reason == "truncated" and sol.answer is None
    leaves = sol.tree.terminals()
    assert leaves and all(is_cut(n) and n.answer is None for n in leaves)
    assert sol.candidates in (None, {})  # no cut chain votes


def test_chains_that_end_by_eos_are_finished_and_graded():
    sol = Reasoner("majority", budget=3, prm=None).solve(PROBLEM)
    assert sol.reason == "finished" and sol.answer is not None
    assert not any(is_cut(n) for n in sol.tree.nodes)


def test_solve_has_step_format(tmp_path, capsys):
    fmt = tmp_path / "cut.json"
    fmt.write_text(json.dumps(small_caps(max_steps=1).to_dict()))
    argv = ["solve", PROBLEM, "--strategy", "majority", "--budget", "2", "--prm", "none"]
    assert main([*argv, "--step-format", str(fmt), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reason"] == "truncated" and out["answer"] is None


def test_label_config_has_step_format():
    from reasoner.training.labeling import LabelConfig

    assert LabelConfig(step_format="chat").step_format == "chat"
    assert "step_format" in LabelConfig().to_dict()


def test_report_counts_truncated_separately():
    rows = [type("R", (), {"reason": r})() for r in ("finished", "truncated", "truncated")]
    [_, line] = _capped_section(rows)
    assert "truncated" in line and line.endswith(": 2.")


def test_gguf_directory_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    assert detect_gguf(tmp_path) == "a.gguf"
    assert detect_gguf(tmp_path, "b.gguf") == "b.gguf"
    monkeypatch.setattr(resolve.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ReasonerError, match="needs the `gguf` package.*or convert"):
        detect_gguf(tmp_path)
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ReasonerError, match="holds 2 GGUF files"):
        detect_gguf(tmp_path)


MARKER = TOKENIZER.encode("\nStep 2:", add_special_tokens=False)
MARKED_TOKENS = st.one_of(
    st.just(MARKER), st.sampled_from([[t] for t in WORDS]), st.just([NEWLINE]), st.just([EOS])
)


@settings(max_examples=100, deadline=None)
@given(
    pieces=st.lists(st.lists(MARKED_TOKENS, min_size=1, max_size=12), min_size=1, max_size=3),
    mode=st.sampled_from(["step", "end"]),
    max_step_tokens=st.integers(2, 12),
    max_steps=st.integers(1, 4),
)
def test_vllm_replay_equals_hf_with_step_markers(pieces, mode, max_step_tokens, max_steps):
    """With markers, vLLM's samples (stopped at "\\n\\n" only) replay to the HF rules' steps."""
    fmt = dataclasses.replace(CHAT, max_step_tokens=max_step_tokens, max_steps=max_steps)
    scripts = [[t for part in piece for t in part] for piece in pieces]
    requests = [GenRequest([1, 100 + i], 1, i, mode, 0.0) for i in range(len(scripts))]
    full = {tuple(r.prefix_ids): s + WORDS * 8 for r, s in zip(requests, scripts)}
    got = scripted_vllm_policy(full, fmt).generate(requests)
    rules = StepRules(TOKENIZER, fmt, {EOS})
    for request, [cont] in zip(requests, got):
        want = hf_replay(rules, request, full[tuple(request.prefix_ids)])
        assert as_tuple(cont) == as_tuple(want)
        assert all(fmt.delimiter not in s.text for s in cont.steps)

"""A broken checkpoint gives one clear error (issue #14, item 2): each damaged file of a policy,
an LM PRM or an evidence PRM (the usual cause: a half-finished download) is one ReasonerError
naming the file and what is wrong, raised at load time, and on the command line one
`reasoner: error:` line with exit code 2, never a library traceback."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from reasoner.api import load_policy, load_prm
from reasoner.models.evidence_prm import EvidenceHead, save_evidence_prm
from reasoner.models.token_evidence import FEATURES
from reasoner.types import ReasonerError

WEIGHTS = "model.safetensors"
CORRUPT = "truncated or corrupt"


def _truncate(name: str, keep: float = 0.5) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])

    return apply


def _flip(name: str, at: int) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = bytearray((d / name).read_bytes())
        data[at] ^= 0xFF
        (d / name).write_bytes(bytes(data))

    return apply


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(text)


def _edit(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = json.loads((d / name).read_text())
        change(data)
        (d / name).write_text(json.dumps(data))

    return apply


def _remove(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def _shard_missing(d: Path) -> None:
    """A two-shard index whose second shard never arrived."""
    shard = d / "model-00001-of-00002.safetensors"
    (d / WEIGHTS).rename(shard)
    raw = shard.read_bytes()
    names = [k for k in json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]]) if k[0] != "_"]
    weight_map = {k: shard.name for k in names}
    weight_map[sorted(names)[0]] = "model-00002-of-00002.safetensors"
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


# (case, how the checkpoint is broken, what the error must say)
LM_CASES = [
    ("weights-truncated", _truncate(WEIGHTS), f"{WEIGHTS}: {CORRUPT}"),
    ("weights-cut-to-a-few-bytes", _truncate(WEIGHTS, 0.00001), f"{WEIGHTS}: {CORRUPT}"),
    ("weights-empty", _write(WEIGHTS, ""), f"{WEIGHTS}: {CORRUPT}"),
    ("weights-header-bit-flipped", _flip(WEIGHTS, 20), f"{WEIGHTS}: {CORRUPT}"),
    ("weights-length-bit-flipped", _flip(WEIGHTS, 3), f"{WEIGHTS}: {CORRUPT}"),
    ("no-weights", _remove(WEIGHTS), "holds no weights"),
    ("shard-missing", _shard_missing, "index.json: names the shard model-00002-of-00002"),
    ("config-not-json", _write("config.json", "{not json"), "config.json: not valid JSON"),
    ("config-a-list", _write("config.json", "[1, 2]"), "config.json: expected a JSON object"),
    (
        "config-without-model-type",
        _edit("config.json", lambda c: c.pop("model_type")),
        "config.json: no 'model_type'",
    ),
    (
        "config-hidden-size-not-the-weights",
        _edit("config.json", lambda c: c.update(hidden_size=64)),
        f"config.json does not match .*{WEIGHTS}: .*model.embed_tokens.weight",
    ),
    (
        "config-more-layers-than-the-weights",
        _edit("config.json", lambda c: c.update(num_hidden_layers=3)),
        f"{WEIGHTS} lacks tensor.*model.layers.2",
    ),
    (
        "generation-config-not-json",
        _write("generation_config.json", "{x"),
        "generation_config.json: not valid JSON",
    ),
    ("tokenizer-not-json", _write("tokenizer.json", "{garbage"), "tokenizer.json: not valid JSON"),
    ("tokenizer-truncated", _truncate("tokenizer.json"), "tokenizer.json: not valid JSON"),
    (
        "tokenizer-not-a-tokenizer",
        _write("tokenizer.json", '{"version": "1.0", "model": 3}'),
        "cannot load the tokenizer .*tokenizer.json",
    ),
    (
        "tokenizer-config-not-json",
        _write("tokenizer_config.json", "{x"),
        "tokenizer_config.json: not valid JSON",
    ),
    ("step-format-not-json", _write("step_format.json", "{oops"), "step_format.json: not valid"),
    (
        "step-format-unknown-field",
        _write("step_format.json", '{"nope": 1}'),
        r"step_format.json: unknown StepFormat field\(s\) \['nope'\]",
    ),
    (
        "step-format-wrong-type",
        _write("step_format.json", '{"max_steps": "x"}'),
        "step_format.json: StepFormat.max_steps must be an integer",
    ),
]

EVIDENCE_CONFIG = "evidence_prm.json"
HEAD = "head.safetensors"
EVIDENCE_CASES = [
    ("head-truncated", _truncate(HEAD), f"{HEAD}: {CORRUPT}"),
    ("head-empty", _write(HEAD, ""), f"{HEAD}: {CORRUPT}"),
    ("head-bit-flipped", _flip(HEAD, 20), f"{HEAD}: {CORRUPT}"),
    ("head-missing", _remove(HEAD), f"has no {HEAD}"),
    ("config-not-json", _write(EVIDENCE_CONFIG, "{x"), f"{EVIDENCE_CONFIG}: not valid JSON"),
    ("config-a-list", _write(EVIDENCE_CONFIG, "[1]"), f"{EVIDENCE_CONFIG}: expected a JSON"),
    (
        "hidden-not-a-number",
        _edit(EVIDENCE_CONFIG, lambda c: c.update(hidden="abc")),
        f"{EVIDENCE_CONFIG}: 'hidden' must be an integer",
    ),
    (
        "hidden-not-the-head",
        _edit(EVIDENCE_CONFIG, lambda c: c.update(hidden=8)),
        f"{HEAD} does not match {EVIDENCE_CONFIG}",
    ),
    (
        "features-not-a-list",
        _edit(EVIDENCE_CONFIG, lambda c: c.update(features="lp_min")),
        f"{EVIDENCE_CONFIG}: 'features' must be a list",
    ),
    (
        "base-not-a-string",
        _edit(EVIDENCE_CONFIG, lambda c: c.update(base=3)),
        f"{EVIDENCE_CONFIG}: 'base' must be",
    ),
    (
        "base-missing",
        _edit(EVIDENCE_CONFIG, lambda c: c.update(base="/nonexistent/base")),
        f"{EVIDENCE_CONFIG}: its base '/nonexistent/base' does not exist",
    ),
]


def _broken_copy(source: Path, target: Path, breaker: Callable[[Path], None]) -> Path:
    shutil.copytree(source, target)
    breaker(target)
    return target


@pytest.fixture(scope="module")
def evidence_ckpt(tiny_ckpt, tmp_path_factory) -> Path:
    """An evidence PRM over the tiny checkpoint (an untrained head: only loading is tested)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("evidence") / "ev"
    return save_evidence_prm(out, EvidenceHead(len(FEATURES), 4), str(tiny_ckpt), list(FEATURES))


def test_the_unbroken_checkpoints_load(tiny_ckpt, evidence_ckpt):
    assert load_policy(str(tiny_ckpt)).num_parameters > 0
    assert load_prm(str(tiny_ckpt)).num_parameters > 0
    assert load_prm(str(evidence_ckpt)).num_parameters > 0


@pytest.mark.parametrize(("case", "breaker", "message"), LM_CASES, ids=[c[0] for c in LM_CASES])
@pytest.mark.parametrize("kind", ["policy", "lm-prm"])
def test_a_broken_policy_or_lm_prm_names_the_file(
    tiny_ckpt, tmp_path, kind, case, breaker, message
):
    broken = _broken_copy(tiny_ckpt, tmp_path / case, breaker)
    load = load_policy if kind == "policy" else load_prm
    with pytest.raises(ReasonerError, match=message) as err:
        load(str(broken))
    assert str(broken) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("case", "breaker", "message"), EVIDENCE_CASES, ids=[c[0] for c in EVIDENCE_CASES]
)
def test_a_broken_evidence_prm_names_the_file(evidence_ckpt, tmp_path, case, breaker, message):
    broken = _broken_copy(evidence_ckpt, tmp_path / case, breaker)
    with pytest.raises(ReasonerError, match=message) as err:
        load_prm(str(broken))
    assert "\n" not in str(err.value)


def test_an_evidence_prm_over_a_broken_base_names_the_base_file(tiny_ckpt, tmp_path):
    base = _broken_copy(tiny_ckpt, tmp_path / "base", _truncate(WEIGHTS))
    ev = save_evidence_prm(tmp_path / "ev", EvidenceHead(len(FEATURES), 4), str(base), FEATURES)
    with pytest.raises(ReasonerError, match=f"{base / WEIGHTS}: {CORRUPT}"):
        load_prm(str(ev))


def _cli(*args: str) -> subprocess.CompletedProcess:
    reasoner = Path(sys.executable).with_name("reasoner")
    return subprocess.run(
        [str(reasoner), "solve", "Ann has 2 bags with 3 apples each. How many apples?", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("case", "option", "breaker", "message"),
    [
        ("policy-weights", "--policy", _truncate(WEIGHTS), f"{WEIGHTS}: {CORRUPT}"),
        ("policy-config", "--policy", _write("config.json", "{x"), "config.json: not valid JSON"),
        ("prm-head", "--prm", _truncate(HEAD), f"{HEAD}: {CORRUPT}"),
    ],
    ids=["policy-weights", "policy-config", "prm-head"],
)
def test_the_cli_prints_one_error_line_and_exits_2(
    tiny_ckpt, evidence_ckpt, tmp_path, case, option, breaker, message
):
    source = evidence_ckpt if option == "--prm" else tiny_ckpt
    broken = _broken_copy(source, tmp_path / case, breaker)
    extra = ["--strategy", "greedy"] if option == "--policy" else ["--policy", str(tiny_ckpt)]
    done = _cli(option, str(broken), *extra, "--budget", "2")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("reasoner: error: "), done.stderr
    assert str(broken) in lines[0] and message.split(": ")[0] in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""

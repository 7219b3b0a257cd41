"""Shared fixtures: tiny real HF checkpoints built from a config in seconds (no downloads)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

DATA_DIR = Path(
    os.environ.get("REASONER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def toy_problems(n: int = 300, seed: int = 0):
    """Two-step word problems in the arith solution format (enough to train a toy policy)."""
    import random

    from reasoner.types import Problem

    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
        text = (
            f"Ann has {a} bags with {b} apples each. She eats {c} apples. How many apples are left?"
        )
        total = a * b
        steps = [
            f"Ann has {a} * {b} = {total} apples.",
            f"She has {total} - {c} = {total - c} apples left. The answer is {total - c}.",
        ]
        out.append(
            Problem(text=text, id=f"toy-{i}", answer=str(total - c), reference="\n\n".join(steps))
        )
    return out


def build_tiny_checkpoint(out_dir: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """An untrained tiny LLaMA + our tokenizer, saved like a real checkpoint."""
    import torch

    from reasoner.step_format import StepFormat
    from reasoner.training.policy_trainer import PolicyTrainConfig, build_model
    from reasoner.training.tokenizer import build_tokenizer

    fmt = StepFormat()
    probs = toy_problems(200)
    tok = build_tokenizer((fmt.render_prompt(p.text) + p.reference for p in probs), vocab_size=300)
    torch.manual_seed(seed)
    cfg = PolicyTrainConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_layers=layers, num_heads=2
    )
    model = build_model(cfg, tok)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory) -> Path:
    """A toy policy trained for a few seconds: it has learned the step format and EOS."""
    from reasoner.training.policy_trainer import PolicyTrainConfig, train_policy

    out = tmp_path_factory.mktemp("trained")
    cfg = PolicyTrainConfig(
        out_dir=str(out),
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=2,
        seq_len=128,
        batch_size=16,
        steps=150,
        lr=3e-3,
        warmup_steps=10,
        save_every=1000,
        log_every=50,
    )
    return train_policy(cfg, problems=toy_problems(400), progress=False)


def prm_family(name: str):
    """tests/prm_families' Family `name`, or skip the test when its builder cannot run here."""
    # imported here: it loads torch and transformers, which most test modules do not need
    from prm_families.families import FAMILIES

    family = FAMILIES[name]
    reason = family.missing()
    if reason:
        pytest.skip(f"{name}: {reason}")
    return family


@pytest.fixture(scope="session")
def prm_family_ckpt(tmp_path_factory):
    """name -> that PRM family's tiny checkpoint (in its real file layout), built once on first use."""

    @functools.cache
    def get(name: str) -> Path:
        return prm_family(name).build(tmp_path_factory.mktemp(name))

    return get


# fields of run outputs that differ run to run (times, the command line)
TIMING_FIELDS = {"seconds", "wall_seconds", "tokens_per_s", "seconds_mean", "seconds_median"}
TIMING_FIELDS |= {"wall_seconds_mean", "started", "first_started", "history", "elapsed", "command"}


def without_timing(value):
    """A JSON value with its timing fields dropped, recursively."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def jsonl_without_timing(path: Path) -> list:
    """A JSON-lines file's records, timing fields dropped."""
    return [without_timing(json.loads(line)) for line in path.read_text().splitlines()]


def short_step_checkpoint(out_dir: Path) -> Path:
    """The tiny checkpoint with steps of at most 6 tokens, 3 per solution (fast jobs)."""
    path = build_tiny_checkpoint(out_dir)
    (path / "step_format.json").write_text(json.dumps({"max_step_tokens": 6, "max_steps": 3}))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module's tests (restored after)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""What a decoding step's sampling costs next to the model step, at real vocabulary sizes.

The sampler draws counter-based Gumbel noise for every (row, vocabulary id) (see
reasoner.models.sampling), so its cost grows with rows x vocab while a small model's step grows
with rows x hidden. Measured: median seconds of `sample_tokens` for R rows at vocabularies of
2,048 (the embedded policy is smaller), 49,152 (SmolLM2) and 151,936 (Qwen2.5), and of one
decoding forward of a random-weight LLaMA with SmolLM2-135M's shape (30 layers, hidden 576,
vocab 49,152; built from its config, no download) for the same R rows at a 256-token context.

Usage: python -m benchmarks.perf_sampling [--rows 16,128] [--repeats 5] [--threads 2]
       [--out benchmarks/results/sampling/after.json]   (a .md is written beside it)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from statistics import median

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasoner.models.kv_reuse import growing_cache
from reasoner.models.sampling import row_key, sample_tokens

VOCABS = (2048, 49152, 151936)
SMOLLM2_135M = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=2048,
)


def timed(fn, repeats: int) -> float:
    """Median wall seconds of fn() over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)


def sampling_seconds(rows: int, vocab: int, repeats: int) -> float:
    """One sample_tokens call for `rows` rows at temperature 1."""
    logits = torch.randn(rows, vocab)
    temps = torch.ones(rows)
    keys = torch.tensor([row_key(0, i) for i in range(rows)], dtype=torch.int64)
    counters = torch.full((rows,), 17, dtype=torch.int64)
    return timed(lambda: sample_tokens(logits, temps, keys, counters), repeats)


@torch.no_grad()
def decode_step_seconds(model: LlamaForCausalLM, rows: int, context: int, repeats: int) -> float:
    """One decoding forward (one new token per row) over a `context`-token KV cache."""
    ids = torch.randint(0, model.config.vocab_size, (rows, context))
    cache = growing_cache()
    model(input_ids=ids, past_key_values=cache, use_cache=True)
    nxt = torch.randint(0, model.config.vocab_size, (rows, 1))
    pos = torch.full((rows, 1), context)

    def step():
        model(input_ids=nxt, position_ids=pos, past_key_values=cache, use_cache=True)
        for layer in cache.layers:  # keep the context length fixed between repeats
            layer._len -= 1
            layer.keys, layer.values = layer._k[:, :, : layer._len], layer._v[:, :, : layer._len]

    return timed(step, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", default="16,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--out", default="benchmarks/results/sampling/after.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows_list = [int(r) for r in args.rows.split(",")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report: dict = {
        "machine": platform.platform(),
        "commit": commit,
        "threads": args.threads,
        "load_before": os.getloadavg(),
        "sampling_s": {},
        "decode_step_s": {},
    }
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).eval()
    for rows in rows_list:
        report["sampling_s"][rows] = {v: sampling_seconds(rows, v, args.repeats) for v in VOCABS}
        report["decode_step_s"][rows] = decode_step_seconds(model, rows, args.context, args.repeats)
    report["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    lines = [
        f"# Sampling vs a decoding step (commit {commit}, {args.threads} threads)",
        "",
        f"Load before {report['load_before']}, after {report['load_after']}. Seconds, median "
        f"of {args.repeats}; decode step: a SmolLM2-135M-shaped LLaMA, {args.context}-token "
        "context.",
        "",
        "| rows | "
        + " | ".join(f"sample_tokens, vocab {v:,}" for v in VOCABS)
        + " | decode step |",
        "|---:|" + "---:|" * (len(VOCABS) + 1),
    ]
    for rows in rows_list:
        cells = [f"{report['sampling_s'][rows][v]:.4f}" for v in VOCABS]
        lines.append(
            f"| {rows} | " + " | ".join(cells) + f" | {report['decode_step_s'][rows]:.4f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

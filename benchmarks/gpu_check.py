"""GPU check of the HF backend: lockstep batching where a big call costs about what a small one does.

Prepared for a session lent a GPU (one card, the machine's own torch, under 8 minutes); on CPU
`--device cpu --quick` runs every section at tiny sizes, which a test does so the script cannot
rot. Sections, each written to the JSON file (atomically, fsynced) as soon as it is done:

- env: torch, device name, memory.
- embedded: the embedded policy and evidence PRM on the device; beam N=16 on 1/8/32/128 arith
  test problems: one solve_batch vs one solve per problem (the sequential run is capped at
  `--seq-cap` problems and reported per problem), identical solutions, accuracy, redundancy
  (tokens computed / distinct tree tokens), peak device memory.
- raw_generate: plain transformers `generate` (sampling a fixed number of new tokens) and our
  backend's first-step generation at 1/16/128/512 rows: new tokens/s.
- random_llama: a ~0.5B LLaMA built from a config with random weights and the embedded
  tokenizer (bfloat16 on CUDA): raw generate throughput and solve vs solve_batch (beam N=8 over
  3 steps, the embedded PRM scoring), peak memory. Its text is noise; it measures the engine at
  a realistic model size.

The HF backends create their tensors without a device, so the check runs them under
`torch.set_default_device(device)` with the models moved there. A section that fails records its
error and the script exits 1; a section the time budget (`--time-budget`) leaves no room for is
recorded as skipped with the reason.

Usage: python -m benchmarks.gpu_check [--device cuda] [--quick] [--out benchmarks/results/gpu_check.json]
On a lent machine: `bash benchmarks/gpu_check.sh` (its dependencies without a package index).
Status: written and smoke-tested on CPU; not yet run on a GPU (none was lent to its session).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from reasoner import Reasoner
from reasoner.api import load_policy, load_prm
from reasoner.grading import grade
from reasoner.models.base import GenRequest
from reasoner.models.resolve import embedded_dir
from reasoner.synthetic import load_split

FULL = {
    "sizes": [1, 8, 32, 128],
    "budget": 16,
    "raw_rows": [1, 16, 128, 512],
    "raw_new_tokens": 64,
    "llama": {"hidden": 1280, "layers": 24, "heads": 20, "intermediate": 3456},
    "llama_sizes": [1, 8, 32, 128],
    "llama_budget": 8,
    "llama_depth": 3,
    "llama_raw_rows": [1, 16, 128],
    "llama_seq_cap": 8,
}
QUICK = {
    "sizes": [1, 2],
    "budget": 4,
    "raw_rows": [1, 4],
    "raw_new_tokens": 8,
    "llama": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128},
    "llama_sizes": [1, 2],
    "llama_budget": 4,
    "llama_depth": 2,
    "llama_raw_rows": [1, 4],
    "llama_seq_cap": 1,
}


class Results:
    """The check's JSON file, rewritten atomically (and fsynced) after every section."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.data, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.write()


def modules_of(obj: Any, depth: int = 2) -> list[torch.nn.Module]:
    """The torch modules a policy / PRM object holds (its attributes, and theirs)."""
    found: list[torch.nn.Module] = []
    for value in vars(obj).values():
        if isinstance(value, torch.nn.Module):
            found.append(value)
        elif depth > 1 and hasattr(value, "__dict__") and not isinstance(value, type):
            found.extend(modules_of(value, depth - 1))
    return found


def place(model_obj: Any, device: str) -> Any:
    """Move every module of a policy / PRM object to `device`; the object itself."""
    for module in modules_of(model_obj):
        module.to(device)
    return model_obj


class Device:
    """The device under test: synchronisation and peak memory (the process's RSS on CPU)."""

    def __init__(self, name: str):
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS

    def describe(self) -> dict:
        info = {"device": self.name, "torch": torch.__version__, "cuda": torch.version.cuda}
        if self.cuda:
            props = torch.cuda.get_device_properties(torch.device(self.name))
            info.update(name=props.name, total_memory_gb=props.total_memory / 2**30)
        else:
            info.update(threads=torch.get_num_threads())
        return info


def timed(dev: Device, fn) -> tuple[Any, float, float]:
    """fn()'s result, wall seconds and CPU seconds, the device synchronised around it."""
    dev.sync()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    dev.sync()
    return result, time.perf_counter() - t0, time.process_time() - c0


def search_sizes(
    dev: Device,
    make,
    problems: list,
    sizes: list[int],
    seq_cap: int,
    deadline: float,
) -> list[dict]:
    """solve_batch vs solve at each size: wall, CPU, tokens, accuracy, redundancy, peak memory."""
    rows = []
    for size in sizes:
        if time.monotonic() > deadline:
            rows.append({"problems": size, "skipped": "time budget spent"})
            continue
        batch = problems[:size]
        reasoner = make()
        dev.reset_peak()
        sols, wall, cpu = timed(dev, lambda r=reasoner, b=batch: r.solve_batch(b))
        peak = dev.peak_mb()
        seq_n = min(size, seq_cap)
        single = make()
        seq, seq_wall, seq_cpu = timed(
            dev, lambda r=single, b=batch[:seq_n]: [r.solve(p) for p in b]
        )
        same = sum(a.steps == b.steps and a.answer == b.answer for a, b in zip(sols, seq))
        new_tokens = sum(s.stats.policy_new_tokens for s in sols)
        rows.append(
            {
                "problems": size,
                "solve_batch_seconds": wall,
                "solve_batch_cpu_seconds": cpu,
                "solve_per_problem_seconds": seq_wall / seq_n,
                "solve_cpu_per_problem_seconds": seq_cpu / seq_n,
                "solve_measured_on": seq_n,
                "speedup": seq_wall / seq_n * size / wall,
                "identical_solutions": f"{same}/{seq_n}",
                "accuracy": mean(grade(s.answer, p.answer) for s, p in zip(sols, batch)),
                "policy_new_tok_s": new_tokens / wall,
                "policy_tokens": sum(s.stats.policy_tokens for s in sols),
                "prm_tokens": sum(s.stats.prm_tokens for s in sols),
                "policy_redundancy": mean(
                    s.stats.policy_tokens / max(1, s.stats.distinct_tokens) for s in sols
                ),
                "peak_memory_mb": peak,
            }
        )
    return rows


def hf_generate_rate(dev: Device, model, prompt: list[int], rows: int, new: int, pad: int) -> float:
    """New tokens/s of plain transformers generate: `rows` samples of exactly `new` tokens."""
    ids = torch.tensor([prompt] * rows, device=dev.name)
    mask = torch.ones_like(ids)
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=True, pad_token_id=pad)
    model.generate(input_ids=ids[:1], attention_mask=mask[:1], **kwargs)  # warm-up
    _, wall, _ = timed(dev, lambda: model.generate(input_ids=ids, attention_mask=mask, **kwargs))
    return rows * new / wall


def backend_rate(dev: Device, policy, prompts: list[list[int]], rows: int, k: int) -> float:
    """New tokens/s of our backend sampling first steps: `rows` rows, k samples per prompt."""
    requests, left, i = [], rows, 0
    while left > 0:
        take = min(k, left)
        requests.append(GenRequest(prompts[i % len(prompts)], take, 7 + i, "step", 1.0))
        left, i = left - take, i + 1
    policy.clear_cache()
    outs, wall, _ = timed(dev, lambda: policy.generate(requests))
    return sum(c.new_tokens for out in outs for c in out) / wall


def raw_generate(dev: Device, policy, problems: list, rows_list: list[int], new: int, k: int):
    """Plain HF generate vs our backend, new tokens/s per rows value."""
    prompts = [policy.encode_prompt(p.text) for p in problems]
    out = []
    with torch.no_grad():
        for rows in rows_list:
            hf = hf_generate_rate(dev, policy.model, prompts[0], rows, new, policy.pad_id)
            ours = backend_rate(dev, policy, prompts, rows, k)
            out.append({"rows": rows, "hf_generate_new_tok_s": hf, "backend_new_tok_s": ours})
    return out


def random_llama(out_dir: Path, shape: dict, dtype: torch.dtype) -> tuple[Path, int]:
    """A LLaMA of `shape` with random weights and the embedded policy's tokenizer and step
    format, saved as a checkpoint; its directory and parameter count."""
    from transformers import LlamaConfig, LlamaForCausalLM

    src = embedded_dir("policy")
    base = json.loads((src / "config.json").read_text())
    config = LlamaConfig(
        vocab_size=base["vocab_size"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        max_position_embeddings=2048,
        bos_token_id=base["bos_token_id"],
        eos_token_id=base["eos_token_id"],
        pad_token_id=base["pad_token_id"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "step_format.json"):
        if (src / name).exists():
            shutil.copy(src / name, out_dir / name)
    return out_dir, sum(p.numel() for p in model.parameters())


def run_section(results: Results, key: str, fn, deadline: float) -> bool:
    """Run one section into results[key]: its value, a skip, or its error. True unless it failed."""
    if time.monotonic() > deadline:
        results.put(key, {"skipped": "time budget spent"})
        return True
    t0 = time.perf_counter()
    try:
        value = fn()
    except Exception as err:  # recorded and reported through the exit code, never hidden
        results.put(key, {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()})
        return False
    results.put(key, {"seconds": time.perf_counter() - t0, **value})
    return True


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--out", default="benchmarks/results/gpu_check.json")
    ap.add_argument(
        "--seq-cap", type=int, default=32, help="problems solved one at a time, at most"
    )
    ap.add_argument("--time-budget", type=float, default=420.0, help="seconds before sections skip")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        ap.error(f"--device must be cuda, cuda:N or cpu, got {args.device!r}")
    if args.seq_cap < 1:
        ap.error("--seq-cap must be >= 1")
    torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    dev = Device(args.device)
    deadline = time.monotonic() + args.time_budget
    results = Results(Path(args.out), {"quick": args.quick, "env": dev.describe(), "config": cfg})
    problems = load_split("test")[: max(cfg["sizes"] + cfg["llama_sizes"])]
    torch.set_default_device(args.device)
    ok = True

    def embedded_models():
        return place(load_policy("embedded"), dev.name), place(load_prm("embedded"), dev.name)

    def embedded():
        policy, prm = embedded_models()

        def make():
            policy.clear_cache()
            prm.clear_cache()
            return Reasoner(strategy="beam", budget=cfg["budget"], policy=policy, prm=prm, seed=0)

        rows = search_sizes(dev, make, problems, cfg["sizes"], args.seq_cap, deadline)
        return {"strategy": "beam", "budget": cfg["budget"], "rows": rows}

    def raw():
        policy = place(load_policy("embedded"), dev.name)
        rows = raw_generate(
            dev, policy, problems, cfg["raw_rows"], cfg["raw_new_tokens"], cfg["budget"]
        )
        return {"model": "embedded policy", "rows": rows}

    def llama():
        dtype = torch.bfloat16 if dev.cuda else torch.float32
        with tempfile.TemporaryDirectory(prefix="gpu-check-llama-") as tmp:
            path, params = random_llama(Path(tmp), cfg["llama"], dtype)
            dtype_name = str(dtype).removeprefix("torch.")
            policy = place(load_policy(str(path), dtype=dtype_name, max_batch_rows=512), dev.name)
            prm = place(load_prm("embedded"), dev.name)
            raw_rows = raw_generate(
                dev, policy, problems, cfg["llama_raw_rows"], cfg["raw_new_tokens"], 4
            )

            def make():
                policy.clear_cache()
                prm.clear_cache()
                return Reasoner(
                    strategy="beam",
                    budget=cfg["llama_budget"],
                    policy=policy,
                    prm=prm,
                    seed=0,
                    max_depth=cfg["llama_depth"],
                )

            cap = min(args.seq_cap, cfg["llama_seq_cap"])
            rows = search_sizes(dev, make, problems, cfg["llama_sizes"], cap, deadline)
        return {
            "parameters": params,
            "dtype": dtype_name,
            "shape": cfg["llama"],
            "raw_generate": raw_rows,
            "rows": rows,
        }

    for key, fn in (("embedded", embedded), ("raw_generate", raw), ("random_llama", llama)):
        ok = run_section(results, key, fn, deadline) and ok
        if dev.cuda:
            torch.cuda.empty_cache()
    torch.set_default_device("cpu")
    print(json.dumps(results.data, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

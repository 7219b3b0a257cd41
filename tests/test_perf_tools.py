"""Smoke runs of the performance tools, so they cannot rot: perf_search writes the JSON it
promises to `--out FILE` (in_search_vs_raw included), and gpu_check's CPU quick mode runs every
section and records it."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu_check, perf_search


@pytest.mark.slow
def test_perf_search_out_file(tmp_path):
    out = tmp_path / "sub" / "perf.json"
    assert (
        perf_search.main(["--problems", "1", "--budget", "4", "--repeats", "1", "--out", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    ratios = report["in_search_vs_raw"]
    assert set(ratios) == {"policy", "prm"}
    assert all(r > 0 for r in ratios.values())
    s = report["in_search"]
    # the metered calls are the search's own: their tokens are what the solutions report
    assert s["policy_calls"] >= 1 and s["prm_calls"] >= 1
    assert s["policy_call_seconds"] + s["prm_call_seconds"] <= s["wall_seconds"] + 1e-6
    assert report["batching"]["identical_solutions"] == 1
    assert out.with_suffix(".md").read_text().count("in search / raw") == 1


def test_perf_search_output_paths(tmp_path):
    assert perf_search.output_paths(str(tmp_path / "a.json")) == (
        tmp_path / "a.json",
        tmp_path / "a.md",
    )
    assert perf_search.output_paths(str(tmp_path / "dir")) == (
        tmp_path / "dir" / "perf_search.json",
        tmp_path / "dir" / "perf_search.md",
    )


@pytest.mark.slow
def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["env"]["device"] == "cpu"
    for key in ("embedded", "raw_generate", "random_llama"):
        assert "error" not in data[key] and "skipped" not in data[key], (key, data[key])
    sizes = [row["problems"] for row in data["embedded"]["rows"]]
    assert sizes == gpu_check.QUICK["sizes"]
    first = data["embedded"]["rows"][0]
    assert first["identical_solutions"] == "1/1"  # one problem alone: solve == solve_batch
    assert first["policy_redundancy"] >= 1.0 and first["peak_memory_mb"] > 0
    assert all(r["hf_generate_new_tok_s"] > 0 for r in data["raw_generate"]["rows"])
    assert data["random_llama"]["parameters"] > 0


def test_gpu_check_refuses_a_missing_device(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--device", "cuda", "--quick"])
    assert exc.value.code == 2
    assert "sees no CUDA device" in capsys.readouterr().err

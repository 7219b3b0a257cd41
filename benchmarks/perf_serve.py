"""What lockstep batching buys a served endpoint: `reasoner serve` under 1, 4, 16, 32 clients.

A real `reasoner serve` subprocess (embedded models, beam N=16) on loopback; the same arith test
problems (seed 0) are sent by C concurrent clients (C = 1 is 32 sequential requests), each client
sending its next request when its last one is answered. Per C: throughput (problems/s), client
latency p50 / p95, the server's CPU seconds, the mean number of searches that shared a tick, and
whether every answer equals the C = 1 answer and `Reasoner.solve`'s (computed in this process
before the server starts, also timed: the no-HTTP sequential baseline).

Usage: python -m benchmarks.perf_serve [--requests 32] [--clients 1,4,16,32] [--repeats 1]
       [--out benchmarks/results/serve]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation (q = 0.5: the median)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def reasoner_command() -> list[str]:
    """The installed `reasoner` script (as a user runs it), else `python -m reasoner.cli`."""
    script = Path(sys.executable).with_name("reasoner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reasoner.cli"]


def start_server(budget: int, max_concurrent: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [*reasoner_command(), "serve", "--port", str(port)]
    cmd += ["--strategy", "beam", "--budget", str(budget), "--max-concurrent", str(max_concurrent)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"reasoner serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("reasoner serve did not become ready")


async def _phase(url: str, texts: list[str], clients: int) -> dict[str, Any]:
    """Send every text once with `clients` concurrent clients; latencies and answers."""
    pending = list(enumerate(texts))
    latencies: list[float] = [0.0] * len(texts)
    answers: list[Any] = [None] * len(texts)
    shared: list[int] = [0] * len(texts)

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            i, text = pending.pop(0)
            body = {"model": "reasoner", "messages": [{"role": "user", "content": text}]}
            t0 = time.perf_counter()
            response = await http.post(f"{url}/v1/chat/completions", json={**body, "seed": 0})
            latencies[i] = time.perf_counter() - t0
            response.raise_for_status()
            info = response.json()["reasoner"]
            answers[i] = (info["answer"], info["steps"])
            shared[i] = info["max_in_flight"]

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {"wall": wall, "latencies": latencies, "answers": answers, "shared": shared}


def baseline(texts: list[str], budget: int) -> dict[str, Any]:
    """Reasoner.solve one problem after another in this process (no HTTP)."""
    from reasoner import Reasoner

    reasoner = Reasoner(strategy="beam", budget=budget, seed=0)
    reasoner.solve(texts[0])  # warm-up
    cpu0, t0 = time.process_time(), time.perf_counter()
    answers, latencies = [], []
    for text in texts:
        t1 = time.perf_counter()
        sol = reasoner.solve(text)
        latencies.append(time.perf_counter() - t1)
        answers.append((sol.answer, sol.steps))
    return {
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - cpu0,
        "latencies": latencies,
        "answers": answers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--clients", default="1,4,16,32")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="runs per C (medians reported)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve"))
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    from reasoner.synthetic import load_split

    problems = load_split("test")[: args.requests]
    texts = [p.text for p in problems]
    load_before = os.getloadavg()
    print(f"load {load_before}; in-process Reasoner.solve baseline ...", file=sys.stderr)
    base = baseline(texts, args.budget)
    proc, url = start_server(args.budget, max(levels))
    server = psutil.Process(proc.pid)
    rows: list[dict[str, Any]] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_phase(url, texts[:2], 2))  # warm-up: the first calls pay one-off costs
        reference = None
        for clients in levels:
            runs = []
            for _ in range(args.repeats):
                cpu0 = sum(server.cpu_times()[:2])
                run = asyncio.run(_phase(url, texts, clients))
                run["cpu"] = sum(server.cpu_times()[:2]) - cpu0
                runs.append(run)
                print(f"C={clients}: {run['wall']:.1f} s", file=sys.stderr)
            walls = [r["wall"] for r in runs]
            pick = runs[walls.index(sorted(walls)[len(walls) // 2])]
            reference = reference or pick["answers"]
            rows.append(
                {
                    "clients": clients,
                    "requests": len(texts),
                    "wall_s": median(walls),
                    "walls_s": walls,
                    "server_cpu_s": median(r["cpu"] for r in runs),
                    "throughput": len(texts) / median(walls),
                    "latency_p50_s": _percentile(pick["latencies"], 0.5),
                    "latency_p95_s": _percentile(pick["latencies"], 0.95),
                    "mean_searches_per_tick": sum(pick["shared"]) / len(texts),
                    "same_answers_as_sequential": sum(
                        a == b for a, b in zip(pick["answers"], reference)
                    ),
                    "same_answers_as_reasoner_solve": sum(
                        a == b for a, b in zip(pick["answers"], base["answers"])
                    ),
                }
            )
            write(out, summarize(args, argv, texts, base, rows, load_before, complete=False))
    finally:
        proc.terminate()
        proc.wait(30)
    result = summarize(args, argv, texts, base, rows, load_before, complete=True)
    write(out, result)
    print(report(result))
    return 0


def summarize(args, argv, texts, base, rows, load_before, complete: bool) -> dict[str, Any]:
    """The result so far (written after every level, so a stopped run keeps what it measured)."""
    seq = rows[0]["throughput"] if rows and rows[0]["clients"] == 1 else None
    for row in rows:
        row["speedup_vs_sequential"] = row["throughput"] / seq if seq else None
        row["speedup_vs_in_process_solve"] = row["throughput"] / (len(texts) / base["wall"])
    return {
        "command": "python -m benchmarks.perf_serve " + " ".join(argv or sys.argv[1:]),
        "complete": complete,
        "strategy": "beam",
        "budget": args.budget,
        "repeats": args.repeats,
        "models": "embedded policy + embedded ER-PRM, HF backend",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "in_process_solve": {
            "wall_s": base["wall"],
            "cpu_s": base["cpu"],
            "throughput": len(texts) / base["wall"],
            "latency_p50_s": _percentile(base["latencies"], 0.5),
            "latency_p95_s": _percentile(base["latencies"], 0.95),
        },
        "rows": rows,
    }


def write(out: Path, result: dict[str, Any]) -> None:
    for name, text in (
        ("perf_serve.json", json.dumps(result, indent=2) + "\n"),
        ("perf_serve.md", report(result)),
    ):
        tmp = out / f".{name}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / name)


def report(result: dict[str, Any]) -> str:
    base = result["in_process_solve"]
    lines = [
        f"# reasoner serve under load (embedded models, beam N={result['budget']}, loopback)",
        "",
        *([] if result["complete"] else ["**Partial: the run stopped before every level.**", ""]),
        f"Command: `{result['command']}`; {result['machine']}; load average before "
        f"{', '.join(f'{x:.2f}' for x in result['load_before'])}, after "
        f"{', '.join(f'{x:.2f}' for x in result['load_after'])}.",
        "",
        f"In-process `Reasoner.solve`, one problem after another: {base['throughput']:.2f} "
        f"problems/s ({base['wall_s']:.1f} s wall, {base['cpu_s']:.1f} CPU-s; latency p50 "
        f"{base['latency_p50_s']:.2f} s, p95 {base['latency_p95_s']:.2f} s).",
        "",
        "| clients | wall s | server CPU-s | problems/s | vs sequential | vs in-process | p50 s "
        "| p95 s | searches per tick | same answers |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['clients']} | {r['wall_s']:.1f} | {r['server_cpu_s']:.1f} | "
            f"{r['throughput']:.2f} | {r['speedup_vs_sequential']:.2f}x | "
            f"{r['speedup_vs_in_process_solve']:.2f}x | {r['latency_p50_s']:.2f} | "
            f"{r['latency_p95_s']:.2f} | {r['mean_searches_per_tick']:.1f} | "
            f"{r['same_answers_as_sequential']}/{r['requests']} "
            f"({r['same_answers_as_reasoner_solve']}/{r['requests']} as Reasoner.solve) |"
        )
    lines += [
        "",
        f"clients = 1 is {result['rows'][0]['requests']} sequential requests. 'vs sequential' is "
        "the throughput ratio to it, "
        "measured in the same run: what lockstep batching of concurrent searches buys. "
        "'searches per tick': the most searches that shared a tick with each request, averaged. "
        "'same answers': (answer, steps) equal to the sequential run's and to in-process "
        "`Reasoner.solve` with the same seed.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

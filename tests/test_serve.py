"""`reasoner serve` for real: a uvicorn server on a free port, the official openai client, raw
HTTP for the error cases; served answers equal `Reasoner.solve` on the same problems and seeds,
whatever else is in flight."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # one server start (torch import, models load): ~10 s on 2 cores

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_CONCURRENT = 6
MIA = "Mia buys 3 boxes with 8 pens each. She gives away 5 pens. How many pens are left?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reasoner_command() -> list[str]:
    """The installed `reasoner` script, as a user runs it (else `python -m reasoner.cli`)."""
    script = Path(sys.executable).with_name("reasoner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reasoner.cli"]


class Server:
    """A `reasoner serve` subprocess and what it answered while its models loaded."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--port", str(self.port), "--max-concurrent", str(MAX_CONCURRENT)]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        self.proc = subprocess.Popen(
            [*_reasoner_command(), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.while_loading: list[httpx.Response] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reasoner serve exited:\n{self.proc.stdout.read()}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=5)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if health.status_code == 200:
                return
            self.while_loading.append(health)
            chat = self.chat_raw(_chat(MIA))
            if chat.status_code == 200:  # it finished loading between the two requests
                return
            self.while_loading.append(chat)
            time.sleep(0.2)
        raise RuntimeError("reasoner serve did not become ready in 180 s")

    def chat_raw(self, body: dict | bytes, path: str = "/v1/chat/completions") -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        return httpx.post(f"{self.url}{path}", content=content, headers=headers, timeout=120)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _chat(problem: str, **fields) -> dict:
    return {"model": "reasoner", "messages": [{"role": "user", "content": problem}], **fields}


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def embedded():
    from reasoner.api import load_policy, load_prm

    return load_policy("embedded"), load_prm("embedded")


@pytest.fixture(scope="module")
def problems():
    from reasoner.synthetic import load_split

    return load_split("test")[:4]


def _solve(embedded, text: str, seed: int, strategy: str = "beam", budget: int = 16, **kwargs):
    from reasoner import Reasoner

    policy, prm = embedded
    reasoner = Reasoner(strategy, budget, policy=policy, prm=prm, seed=seed, **kwargs)
    return reasoner.solve(text)


def _gather(server, requests: list[dict]):
    """Send the requests at once with the openai async client; their responses, in order."""

    async def run():
        url = f"{server.url}/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
            return await asyncio.gather(*[client.chat.completions.create(**r) for r in requests])

    return asyncio.run(run())


def _texts(tree: dict) -> list[str]:
    return [node["text"] for node in tree["nodes"]]


def _request(problem: str, seed: int, **extra) -> dict:
    return {
        "model": "reasoner",
        "messages": [{"role": "user", "content": problem}],
        "seed": seed,
        **({"extra_body": extra} if extra else {}),
    }


# ---- serving ------------------------------------------------------------------------------------
def test_while_models_load_the_server_answers_503_with_an_openai_error(server):
    assert server.while_loading, "the server was never seen loading"
    for response in server.while_loading:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
    chat = [r.json() for r in server.while_loading if "error" in r.json()]
    assert chat and all(e["error"]["code"] == "loading" for e in chat)
    assert server.health()["status"] == "ok"


def test_models_and_health(client, server):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "reasoner" and {"beam", "best_of_n", "mcts", "majority"} <= set(ids)
    assert server.health()["max_concurrent"] == MAX_CONCURRENT


def test_served_answers_equal_reasoner_solve_while_sharing_ticks(server, embedded, problems):
    from reasoner.grading import grade

    seeds = list(range(len(problems)))
    served = _gather(server, [_request(p.text, s) for p, s in zip(problems, seeds)])
    correct = 0
    for problem, seed, response in zip(problems, seeds, served):
        expected = _solve(embedded, problem.text, seed)
        extra = response.model_extra["reasoner"]
        assert extra["answer"] == expected.answer and extra["steps"] == expected.steps
        # a PRM batch of other chains pads differently: float noise, never a different choice
        assert extra["step_scores"] == pytest.approx(expected.step_scores, abs=1e-4)
        assert response.choices[0].message.content == "\n\n".join(expected.steps)
        assert response.choices[0].message.content.endswith(f"The answer is {expected.answer}.")
        # usage counts policy tokens: what the search prefilled and generated
        assert response.usage.total_tokens == extra["policy_tokens"] > 0
        assert response.usage.completion_tokens == extra["stats"]["policy_new_tokens"]
        assert extra["prm_tokens"] > 0 and extra["flops"] > 0 and extra["seconds"] > 0
        correct += grade(extra["answer"], problem.answer)
    assert correct >= 1  # beam@16 solves about 2 in 3 of these
    # they did run together: every search shared at least one tick with the others
    assert max(r.model_extra["reasoner"]["max_in_flight"] for r in served) > 1


def test_a_result_does_not_depend_on_what_else_is_in_flight(server, client, problems):
    alone = client.chat.completions.create(**_request(MIA, 7, return_tree=True))
    assert alone.model_extra["reasoner"]["max_in_flight"] == 1
    # the same problem with other seeds, and other problems, in the same ticks
    same = [_request(MIA, seed, return_tree=True) for seed in (7, 8, 9)]
    together = _gather(server, same + [_request(p.text, 7) for p in problems[:3]])
    first = together[0]
    assert first.model_extra["reasoner"]["max_in_flight"] > 1
    assert first.choices[0].message.content == alone.choices[0].message.content
    mine, solo = first.model_extra["reasoner"], alone.model_extra["reasoner"]
    assert (mine["answer"], mine["steps"], mine["nodes"]) == (
        solo["answer"],
        solo["steps"],
        solo["nodes"],
    )
    assert mine["step_scores"] == pytest.approx(solo["step_scores"], abs=1e-4)
    assert _texts(mine["tree"]) == _texts(solo["tree"])
    # another seed is another search
    assert len({json.dumps(_texts(r.model_extra["reasoner"]["tree"])) for r in together[:3]}) == 3


def test_a_request_joins_a_search_already_running_at_the_next_tick(server, client, embedded):
    body = _chat(MIA, budget=64, stream=True, seed=3)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as long:
        lines = long.iter_lines()
        while "progress" not in next(lines):  # the long search has run a tick
            pass
        # best-of-4 takes two ticks (sample, score); the beam search takes one per step and score
        short = client.chat.completions.create(**_request(MIA, 5, strategy="best_of_n", budget=4))
        assert server.health()["in_flight"] == 1  # answered while the long one still runs
        events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    info = short.model_extra["reasoner"]
    assert info["max_in_flight"] == 2 and info["queued_seconds"] < 60
    assert info["ticks"] == 2 and info["steps"] == _solve(embedded, MIA, 5, "best_of_n", 4).steps
    final = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert final and final[-1]["reasoner"]["ticks"] > info["ticks"]


def test_completions_endpoint_n_max_tokens_and_search_options(client, embedded):
    text = client.completions.create(model="best_of_n", prompt=MIA, seed=2, n=3)
    expected = _solve(embedded, MIA, 2, "best_of_n")
    info = text.model_extra["reasoner"]
    assert info["strategy"] == "best_of_n" and info["budget"] == 16
    assert info["steps"] == expected.steps and info["candidates"] == expected.candidates
    assert len(text.choices) >= 2  # best-of-16 finds several distinct answers here
    answers = [c.text.rsplit("The answer is ", 1)[-1] for c in text.choices]
    assert len(set(answers)) == len(answers) and answers[0] == info["answer"] + "."
    cut = client.completions.create(model="best_of_n", prompt=MIA, seed=2, max_tokens=5)
    assert cut.choices[0].finish_reason == "length"
    assert text.choices[0].text.startswith(cut.choices[0].text) and len(cut.choices[0].text) < 30
    assert cut.model_extra["reasoner"]["answer"] == info["answer"]  # the search is unchanged
    # search options through extra_body: strategy, budget, a strategy option, the tree
    beam = client.chat.completions.create(
        **_request(MIA, 2, strategy="beam", budget=8, width=2, return_tree=True)
    )
    same = _solve(embedded, MIA, 2, budget=8, strategy_options={"width": 2})
    assert beam.model_extra["reasoner"]["steps"] == same.steps
    tree = beam.model_extra["reasoner"]["tree"]
    assert len(tree["nodes"]) == beam.model_extra["reasoner"]["nodes"] == len(same.tree)


def test_stream_sends_a_chunk_per_tick_then_the_message(client):
    whole = client.chat.completions.create(**_request(MIA, 4))
    stream = client.chat.completions.create(
        **_request(MIA, 4), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    extras = [c.model_extra.get("reasoner") or {} for c in chunks]
    progress = [e["progress"] for e in extras if "progress" in e]
    assert [p["tick"] for p in progress] == list(range(1, len(progress) + 1)) and progress
    assert progress[-1]["nodes"] >= progress[0]["nodes"] > 1
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].model_extra["reasoner"]["answer"] == whole.model_extra["reasoner"]["answer"]
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_the_readme_examples_run_against_the_server(server):
    section = README.read_text().split("## Serve", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(code.replace("http://127.0.0.1:8000", server.url), namespace)
    r = namespace["r"]
    answer = r.model_extra["reasoner"]["answer"]
    assert r.choices[0].message.content.endswith(f"The answer is {answer}.")
    assert 1 <= len(r.choices) <= 2 and r.usage.total_tokens > 0
    curl = re.search(r"```bash\n(curl .*?)```", section, re.S).group(1)
    curl = curl.replace("http://127.0.0.1:8000", server.url)
    if shutil.which("curl"):
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=120)
        body = json.loads(done.stdout)
    else:  # the same request without curl
        body = server.chat_raw(json.loads(re.search(r"-d '(.*?)'", curl, re.S).group(1))).json()
    assert body["object"] == "chat.completion" and body["reasoner"]["strategy"] == "beam"
    assert body["choices"][0]["message"]["content"].endswith(
        f"The answer is {body['reasoner']['answer']}."
    )


# ---- errors -------------------------------------------------------------------------------------
def _error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def test_bad_requests_get_openai_errors_with_the_right_status(server):
    p = [{"role": "user", "content": MIA}]
    assert "JSON" in _error(server.chat_raw(b'{"model": "reasoner", '), 400)["message"]
    _error(server.chat_raw(b"[1, 2]"), 400)
    _error(server.chat_raw({"model": "reasoner", "messages": []}), 400, "messages")
    _error(server.chat_raw({"model": "reasoner"}), 400, "messages")
    system_only = [{"role": "system", "content": "be brief"}]
    _error(server.chat_raw({"model": "reasoner", "messages": system_only}), 400, "messages")
    _error(
        server.chat_raw({"model": "reasoner", "messages": [{"role": "user", "content": " "}]}), 400
    )
    _error(server.chat_raw({"model": "gpt-4", "messages": p}), 404, "model")
    _error(server.chat_raw(_chat(MIA, strategy="nope")), 404, "strategy")
    assert (
        "valid: ['lookahead', 'width']"
        in _error(server.chat_raw(_chat(MIA, wdth=2)), 400)["message"]
    )
    _error(server.chat_raw(_chat(MIA, width=0)), 400)
    _error(server.chat_raw(_chat(MIA, aggregation="max")), 400, "aggregation")
    _error(server.chat_raw(_chat(MIA, budget=0)), 400, "budget")
    _error(server.chat_raw(_chat(MIA, budget="16")), 400, "budget")
    _error(server.chat_raw(_chat(MIA, temperature=-1)), 400, "temperature")
    _error(server.chat_raw(_chat(MIA, top_p=0.5)), 400, "top_p")
    _error(server.chat_raw(_chat(MIA, n=0)), 400, "n")
    _error(server.chat_raw(_chat(MIA, budget=65)), 413, "budget")
    long = _error(server.chat_raw(_chat("What is 1 + 1? " * 300)), 413, "messages")
    assert long["code"] == "context_length_exceeded"
    _error(server.chat_raw(b"{" + b" " * (1 << 20) + b"}"), 413)
    completion = {"model": "reasoner", "prompt": [MIA, MIA]}
    _error(server.chat_raw(completion, "/v1/completions"), 400, "prompt")
    _error(server.chat_raw(_chat(MIA), "/v1/nowhere"), 404)
    # the server keeps serving, and nothing leaked into the next request
    assert server.health()["in_flight"] == 0
    first = server.chat_raw(_chat(MIA, seed=11)).json()["reasoner"]
    again = server.chat_raw(_chat(MIA, seed=11)).json()["reasoner"]
    assert (first["steps"], first["stats"]["policy_tokens"]) == (
        again["steps"],
        again["stats"]["policy_tokens"],
    )


def _wait_for(server, predicate, seconds: float = 60.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = server.health()
        if predicate(health):
            return health
        time.sleep(0.05)
    raise AssertionError(f"timed out; last /health: {health}")


def test_too_many_in_flight_is_429_and_a_client_that_leaves_cancels_its_search(server):
    before = server.health()
    clients = [httpx.Client(timeout=120) for _ in range(MAX_CONCURRENT)]

    def open_stream(seed: int) -> httpx.Response:  # headers come when its search has started
        body = _chat(MIA, budget=64, stream=True, seed=seed)
        request = clients[seed].build_request(
            "POST", f"{server.url}/v1/chat/completions", json=body
        )
        return clients[seed].send(request, stream=True)

    streams = []
    try:
        with ThreadPoolExecutor(MAX_CONCURRENT) as pool:  # all at once: they share ticks
            opening = [pool.submit(open_stream, seed) for seed in range(MAX_CONCURRENT)]
            _wait_for(server, lambda h: h["in_flight"] == MAX_CONCURRENT)
            error = _error(server.chat_raw(_chat(MIA)), 429)
            assert error["type"] == "rate_limit_error" and error["code"] == "too_many_requests"
            streams = [f.result() for f in opening]
        for s in streams:  # every client reads its first chunk, then leaves
            assert s.status_code == 200 and next(s.iter_lines()).startswith("data: ")
    finally:
        for s in streams:
            s.close()
        for c in clients:
            c.close()
    after = _wait_for(server, lambda h: h["in_flight"] == 0)
    assert after["cancelled"] - before["cancelled"] == MAX_CONCURRENT
    assert after["served"] == before["served"]  # none ran on to the end
    # a plain request whose client gives up is cancelled too
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{server.url}/v1/chat/completions", json=_chat(MIA, budget=64), timeout=0.5)
    gone = _wait_for(server, lambda h: h["in_flight"] == 0)
    assert gone["cancelled"] - after["cancelled"] == 1 and gone["served"] == after["served"]


# ---- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--budget", "100"], "above --max-budget 64"),
        (["--strategy", "nope"], "nope"),
        (["--option", "wdth=2"], "unknown option"),
        (["--strategy", "beam", "--prm", "none"], "needs a PRM"),
        (["--port", "99999"], "--port must be in 0..65535"),
        (["--port", "TAKEN"], "Address already in use"),
    ],
)
def test_serve_refuses_bad_flags_before_loading_models(flags, message):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    flags = [str(taken.getsockname()[1]) if f == "TAKEN" else f for f in flags]
    with taken:
        done = subprocess.run(
            [sys.executable, "-m", "reasoner.cli", "serve", "--port", "1", *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2 and done.stderr.startswith("reasoner: error: ")
    assert message in done.stderr and "Traceback" not in done.stderr

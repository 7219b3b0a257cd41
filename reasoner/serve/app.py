"""The FastAPI app of `reasoner serve`: OpenAI-compatible completions over the lockstep engine.

POST /v1/chat/completions and /v1/completions queue one search each and answer when it ends
(or stream a chunk per tick with `stream: true`); a client that disconnects cancels its search.
GET /v1/models lists the presets, GET /health the engine's state (503 while models load).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from reasoner.serve import protocol as wire
from reasoner.serve.config import ServeConfig
from reasoner.serve.engine import Busy, Job
from reasoner.serve.protocol import APIError, ChatRequest, CompletionRequest
from reasoner.serve.responses import choices, reasoner_object, usage
from reasoner.serve.service import Plan, Service


def _error(err: APIError) -> JSONResponse:
    headers = {"Retry-After": "1"} if err.status in (429, 503) else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def _threadsafe(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Run fn(*args) on the event loop from the engine thread (dropped once the loop is gone)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop closed: the server is shutting down
        pass


def _set(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: only that can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _admission_error(job: Job, problem_field: str) -> APIError | None:
    """Why a job's search could not start (None when it did): read in the engine thread."""
    if job.cancelled:
        return APIError(503, "the server is shutting down", code="shutting_down")
    if job.error is not None:
        if job.failed_by_bug:
            return APIError(500, f"the search failed: {job.error}", code="search_failed")
        return APIError(400, job.error, "strategy", "invalid_search")
    run = job.run
    if run is not None and run.tree is None and run.solution is not None:  # the prompt failed
        return APIError(413, run.solution.error or "", problem_field, "context_length_exceeded")
    return None


def _outcome_error(job: Job, problem_field: str) -> APIError | None:
    """The error a finished job is answered with, None when it has a result."""
    refused = _admission_error(job, problem_field)
    if refused is not None:
        return refused
    if job.solution is not None and job.solution.error is not None:
        return APIError(413, job.solution.error, "budget", "search_too_large")
    return None


def _job_info(job: Job) -> dict[str, Any]:
    return {
        "ticks": job.ticks,
        "max_in_flight": job.max_in_flight,
        "queued_seconds": max(0.0, job.started - job.submitted),
    }


def create_app(cfg: ServeConfig, on_load_error: Any = None) -> FastAPI:
    """The app; its models load in the background when it starts (requests get 503 meanwhile)."""
    service = Service(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.load_in_background(on_load_error)
        yield
        service.stop()

    app = FastAPI(title="reasoner serve", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return _error(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(APIError(err.status_code, str(err.detail)))

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            engine = service.check_ready()
        except APIError as err:
            body = {"status": err.code or "unavailable", "message": err.message}
            return JSONResponse(body, 503, headers={"Retry-After": "1"})
        return JSONResponse({"status": "ok", **engine.snapshot()})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": p.name,
                "object": "model",
                "created": 0,
                "owned_by": "reasoner",
                "reasoner": {"strategy": p.strategy, "budget": p.budget, "options": p.options},
            }
            for p in service.presets.values()
        ]
        return {"object": "list", "data": data}

    async def complete(request: Request, kind: str) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
            raise APIError(413, f"the request body is over {cfg.max_body_bytes} bytes")
        raw = await request.body()
        if len(raw) > cfg.max_body_bytes:
            raise APIError(413, f"the request body is over {cfg.max_body_bytes} bytes")
        req = wire.parse_request(raw, ChatRequest if kind == "chat" else CompletionRequest)
        engine = service.check_ready()
        field = "messages" if kind == "chat" else "prompt"
        plan = service.plan(req, field)
        job = service.job(plan)
        loop = asyncio.get_running_loop()
        admitted: asyncio.Future = loop.create_future()
        done: asyncio.Future = loop.create_future()
        events: asyncio.Queue = asyncio.Queue()

        # these run in the engine thread, the one thread that touches the models and the tree
        def on_admit(j: Job) -> None:
            _threadsafe(loop, _set, admitted, _admission_error(j, field))

        def on_tick(j: Job) -> None:
            progress = {"tick": j.ticks, "nodes": len(j.run.tree), "in_flight": j.max_in_flight}
            progress["policy_tokens"] = j.run.stats.policy_tokens
            progress["prm_tokens"] = j.run.stats.prm_tokens
            _threadsafe(loop, events.put_nowait, progress)

        def on_done(j: Job) -> None:
            try:
                result: Any = _outcome_error(j, field) or _body(kind, req, plan, j)
            except Exception as err:  # a bug in rendering: this request fails, not the engine
                result = APIError(500, f"rendering the result failed: {err!r}")
            _threadsafe(loop, _set, done, result)
            _threadsafe(loop, events.put_nowait, None)

        job.on_admit, job.on_done = on_admit, on_done
        if req.stream:
            job.on_tick = on_tick
        try:
            engine.submit(job)
        except Busy as err:
            raise APIError(
                429, f"too many requests in flight: {err}", code="too_many_requests"
            ) from None
        watcher = asyncio.ensure_future(_client_gone(request))
        streaming = False
        try:
            # the search starts at the next tick boundary; a refusal still gets its own status
            await asyncio.wait({admitted, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if admitted.done() and admitted.result() is not None:
                raise admitted.result()
            if req.stream and admitted.done():
                streaming = True  # from here the stream's own end cancels a search left behind
                include_usage = bool((req.stream_options or {}).get("include_usage"))
                return _stream(kind, plan, job, engine, events, done, include_usage)
            if admitted.done():
                await asyncio.wait({done, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not done.done() and not streaming:
                engine.cancel(job)  # the client left (or the server is cancelling the request)
            watcher.cancel()
        if not done.done():
            return Response(status_code=499)
        if isinstance(done.result(), APIError):
            raise done.result()
        return JSONResponse(done.result())

    def _body(kind: str, req: Any, plan: Plan, job: Job) -> dict[str, Any]:
        sol = job.solution
        picked = choices(service.policy, sol, plan.aggregation, req.n, req.token_cap())
        body = wire.envelope(kind, wire.completion_id(kind), plan.model)
        body["choices"] = [wire.choice(kind, i, text, fin) for i, (text, fin) in enumerate(picked)]
        body["usage"] = usage(sol)
        body["system_fingerprint"] = None
        body["reasoner"] = reasoner_object(
            sol, plan.budget, plan.seed, _job_info(job), req.return_tree
        )
        return body

    def _stream(
        kind: str,
        plan: Plan,
        job: Job,
        engine: Any,
        events: asyncio.Queue,
        done: asyncio.Future,
        include_usage: bool,
    ) -> StreamingResponse:
        base = wire.envelope(kind, wire.completion_id(kind), plan.model)

        async def events_out() -> AsyncIterator[str]:
            try:
                yield wire.sse(wire.chunk(kind, base, delta={"role": "assistant", "content": ""}))
                while True:
                    progress = await events.get()
                    if progress is None:
                        break
                    yield wire.sse(wire.chunk(kind, base, reasoner={"progress": progress}))
                result = done.result()
                if isinstance(result, APIError):
                    yield wire.sse(result.body())
                    yield wire.sse("[DONE]")
                    return
                for i, part in enumerate(result["choices"]):
                    text = part["message"]["content"] if kind == "chat" else part["text"]
                    yield wire.sse(wire.chunk(kind, base, i, delta={"content": text}))
                    last = i == len(result["choices"]) - 1
                    extra = {"reasoner": result["reasoner"]} if last else {}
                    yield wire.sse(wire.chunk(kind, base, i, finish=part["finish_reason"], **extra))
                if include_usage:
                    tail = dict(base, object=wire.chunk(kind, base)["object"], choices=[])
                    yield wire.sse({**tail, "usage": result["usage"]})
                yield wire.sse("[DONE]")
            finally:
                if not done.done():  # the client disconnected mid-stream
                    engine.cancel(job)

        return StreamingResponse(events_out(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await complete(request, "text")

    return app

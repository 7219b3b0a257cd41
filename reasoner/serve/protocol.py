"""The OpenAI wire format of `reasoner serve`: request models, error objects, response bodies.

Requests are validated here with pydantic (standard OpenAI fields, the search fields, and every
other top-level field read as a strategy option), so a bad request is one OpenAI-style error
object naming the field, with the HTTP status that says why (400 / 404 / 413 / 429 / 503).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

# standard OpenAI fields that reasoner cannot honour: accepted only at their neutral value, so a
# request never silently gets something other than what it asked for
NEUTRAL = {
    "top_p": (None, 1, 1.0),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "stop": (None, [], ""),
    "logit_bias": (None, {}),
    "echo": (None, False),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "response_format": (None, {"type": "text"}),
}
# accepted and ignored: they do not change what is computed
IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls"}


class APIError(Exception):
    """An error answered as an OpenAI error object with an HTTP status."""

    TYPES = {
        400: "invalid_request_error",
        404: "not_found_error",
        413: "invalid_request_error",
        429: "rate_limit_error",
        500: "server_error",
        503: "service_unavailable",
    }

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: {"error": {message, type, param, code}}."""
        kind = self.TYPES.get(self.status, "invalid_request_error")
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


class _Base(BaseModel):
    """Fields shared by both endpoints; extra top-level fields are kept (strategy options)."""

    model_config = ConfigDict(extra="allow")

    model: str
    temperature: float | None = None
    seed: StrictInt | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    n: StrictInt = Field(default=1, ge=1, le=16)
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None
    # search fields (the openai client sends them through extra_body)
    strategy: str | None = None
    budget: StrictInt | None = Field(default=None, ge=1)
    aggregation: str | None = None
    return_tree: StrictBool = False


class Message(BaseModel):
    """One chat message; content is a string or a list of {"type": "text", "text": ...} parts."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(
                    400, "only text content parts are supported", "messages", "invalid_content"
                )
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Base):
    """POST /v1/chat/completions: the last user message is the problem."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)

    def problem_text(self) -> str:
        users = [m for m in self.messages if m.role == "user"]
        if not users:
            raise APIError(400, "messages hold no user message (the problem)", "messages")
        return users[-1].text()

    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Base):
    """POST /v1/completions: the prompt is the problem (one prompt per request)."""

    prompt: str | list[str]

    def problem_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(
                400,
                f"one prompt per request, got a list of {len(self.prompt)} (send one request "
                f"per problem: concurrent requests are batched together)",
                "prompt",
            )
        return self.prompt[0]

    def token_cap(self) -> int | None:
        return self.max_tokens


SEARCH_FIELDS = set(_Base.model_fields) | {"messages", "prompt", "max_completion_tokens"}


def parse_request(raw: bytes, kind: type[_Base]) -> _Base:
    """The validated request of a JSON body; any problem is an APIError naming the field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(data).__name__}")
    for name, allowed in NEUTRAL.items():
        if name in data and data[name] not in allowed:
            raise APIError(
                400,
                f"{name}={data[name]!r} is not supported by reasoner serve (accepted: "
                f"{', '.join(repr(v) for v in allowed)})",
                name,
                "unsupported_parameter",
            )
    try:
        request = kind.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise APIError(400, f"{where}: {first['msg']}", where) from None
    if request.temperature is not None and not (
        math.isfinite(request.temperature) and request.temperature >= 0
    ):
        raise APIError(400, "temperature must be a finite number >= 0", "temperature")
    return request


def strategy_options(request: _Base) -> dict[str, Any]:
    """The request's extra top-level fields: its strategy options."""
    extra = dict(request.model_extra or {})
    for name in list(extra):
        if name in NEUTRAL or name in IGNORED:
            del extra[name]
    return extra


def completion_id(kind: str) -> str:
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def envelope(kind: str, rid: str, model: str, created: int | None = None) -> dict[str, Any]:
    """The fields every response and chunk starts with."""
    return {
        "id": rid,
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": created or int(time.time()),
        "model": model,
    }


def choice(kind: str, index: int, text: str, finish: str) -> dict[str, Any]:
    if kind == "chat":
        return {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": None,
        }
    return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}


def chunk(
    kind: str,
    base: dict[str, Any],
    index: int = 0,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One streamed chunk in the OpenAI format (a chat delta, or a completion's text piece)."""
    body = dict(base)
    body["object"] = "chat.completion.chunk" if kind == "chat" else "text_completion"
    if kind == "chat":
        part: dict[str, Any] = {"index": index, "delta": delta or {}, "finish_reason": finish}
    else:
        text = (delta or {}).get("content", "")
        part = {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
    body["choices"] = [part]
    body.update(extra)
    return body


def sse(data: dict[str, Any] | Literal["[DONE]"]) -> str:
    """One server-sent event."""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n"

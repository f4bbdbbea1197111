"""A tiny OpenAI-compatible server on a real socket, for the external provider tests.

Behaviour is chosen by the request's ``model``: ``text`` streams content deltas, ``tools``
streams a tool call in fragments (plus one to an unknown tool and one with broken arguments),
``text-call`` writes the call as JSON text, ``nostream`` ignores ``stream: true``, ``error-503``
and ``error-429`` fail with OpenAI error bodies, ``stream-error`` fails inside the stream,
``slow`` streams a delta every 20 ms (to test cancellation) and ``hang`` never answers in time.
Every request is recorded (headers, JSON body or multipart fields).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SECRET_IN_ERROR = "provider-says-your-key-is-"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any = None  # JSON body
    fields: dict[str, str] = field(default_factory=dict)  # multipart text fields
    file: bytes = b""  # multipart file
    file_type: str = ""


@dataclass
class StubState:
    requests: list[Recorded] = field(default_factory=list)
    slow_sent: int | None = None  # deltas the slow stream sent before it ended
    slow_done: threading.Event = field(default_factory=threading.Event)

    def last(self, path: str) -> Recorded:
        return next(r for r in reversed(self.requests) if r.path == path)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _error(status: int, code: str, param: str | None, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "server_error", "code": code, "param": param}}
    return JSONResponse(body, status_code=status)


def _tool_fragments() -> list[str]:
    def call(index: int, **function: str) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": function}
        if "name" in function:
            fragment.update(id=f"call_{index}", type="function")
        return {"tool_calls": [fragment]}

    return [
        _chunk({"role": "assistant", "content": None}),
        _chunk(call(0, name="get_weather", arguments="")),
        _chunk(call(0, arguments='{"ci')),
        _chunk(call(0, arguments='ty": "Par')),
        _chunk(call(0, arguments='is"}')),
        _chunk(call(1, name="launch_rockets", arguments='{"count": 3}')),
        _chunk(call(2, name="get_weather", arguments='{"city": ')),
        _chunk({}, finish="tool_calls"),
        "data: [DONE]\n\n",
    ]


def _sse(events: list[str], pause: float = 0.0) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        for event in events:
            yield event
            if pause:
                await asyncio.sleep(pause)

    return StreamingResponse(body(), media_type="text/event-stream")


def build_app(state: StubState) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await request.json()
        state.requests.append(Recorded(request.url.path, dict(request.headers), body))
        model = body["model"]
        if model == "error-503":
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return _error(503, "overloaded", None, f"try later, {SECRET_IN_ERROR}{key}")
        if model == "error-429":
            return _error(429, "rate_limit_exceeded", "messages", "slow down")
        if model == "hang":
            await asyncio.sleep(1.5)
            return _sse(["data: [DONE]\n\n"])
        if model == "tools":
            return _sse(_tool_fragments())
        if model == "text-call":
            pieces = [
                "Let me check. ",
                '{"name": "get_',
                'weather", "arguments": ',
                '{"city": "Oslo"}}',
            ]
            return _sse([_chunk({"content": p}) for p in pieces] + ["data: [DONE]\n\n"])
        if model == "nostream":
            message = {"role": "assistant", "content": "Plain answer."}
            return JSONResponse({"choices": [{"index": 0, "message": message}]})
        if model == "stream-error":
            error = {"error": {"message": "boom", "code": 500, "param": None}}
            return _sse([_chunk({"content": "Hi"}), f"data: {json.dumps(error)}\n\n"])
        if model == "slow":
            return StreamingResponse(_slow(state), media_type="text/event-stream")
        words = ["Hello", " there", ", how", " can I", " help?"]
        events = [": keep-alive\n\n", _chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"content": w}) for w in words]
        return _sse([*events, _chunk({}, finish="stop"), "data: [DONE]\n\n"])

    async def transcriptions(request: Request) -> Response:
        raw = await request.body()
        fields, file, file_type = _multipart(request.headers["content-type"], raw)
        state.requests.append(
            Recorded(request.url.path, dict(request.headers), None, fields, file, file_type)
        )
        if fields.get("model") == "error-503":
            return _error(503, "overloaded", None, "try later")
        return JSONResponse({"text": " hello world "})

    async def speech(request: Request) -> Response:
        body = await request.json()
        state.requests.append(Recorded(request.url.path, dict(request.headers), body))
        if body["model"] == "error-503":
            return _error(503, "overloaded", None, "try later")
        samples = speech_samples(len(body["input"]))
        data = samples.astype("<i2").tobytes()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 1001):  # odd sizes split samples across chunks
                yield data[start : start + 1001]

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
        ]
    )


def speech_samples(characters: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """What the speech endpoint returns: 10 ms at 24 kHz per character, a known ramp."""
    return (np.arange(characters * 240) % 2000 - 1000).astype(np.int16) * 16


async def _slow(state: StubState) -> AsyncIterator[str]:
    sent = 0
    try:
        for _ in range(200):
            yield _chunk({"content": "word "})
            sent += 1
            await asyncio.sleep(0.02)
        yield "data: [DONE]\n\n"
    finally:
        state.slow_sent = sent
        state.slow_done.set()


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], bytes, str]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, str] = {}
    file, file_type = b"", ""
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes) and isinstance(name, str)
        if part.get_filename():
            file, file_type = payload, part.get_content_type()
        else:
            fields[name] = payload.decode()
    return fields, file, file_type


class StubServer:
    """Runs the stub app with uvicorn in a background thread on 127.0.0.1:<ephemeral>."""

    def __init__(self) -> None:
        self.state = StubState()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.state), log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"

    def start(self) -> None:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return
            threading.Event().wait(0.01)
        raise RuntimeError("stub server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

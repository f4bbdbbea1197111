"""A stored agent end to end: its own OpenAI-compatible LLM, an HTTP tool the server calls itself,
and the session's record and timeline afterwards (§6.6, §13.7, §17.3, §17.4)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vocalis.server.background import background_server, free_port

LLM_KEY = "sk-agent-secret"
TOOL_KEY = "Bearer tool-secret"


class Upstream:
    """An OpenAI-compatible model that calls get_weather once, and the weather API it calls."""

    def __init__(self) -> None:
        self.chat_requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.tool_requests: list[tuple[dict[str, str], dict[str, str]]] = []

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.chat_requests.append((dict(request.headers), body))
        if body["messages"][-1]["role"] == "tool":
            chunks = [{"content": "It is sunny "}, {"content": "in Paris."}]
        else:
            call = {
                "index": 0,
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
            chunks = [{"tool_calls": [call]}]

        async def stream() -> Any:
            for delta in chunks:
                data = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def weather(self, request: Request) -> Response:
        self.tool_requests.append((dict(request.headers), dict(request.query_params)))
        return JSONResponse({"forecast": "sunny"})


@pytest.fixture
def upstream() -> Iterator[tuple[str, Upstream]]:
    up = Upstream()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", up.chat, methods=["POST"]),
            Route("/weather", up.weather, methods=["GET"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", up
    server.should_exit = True
    thread.join(5)


def agent_body(base: str) -> dict[str, Any]:
    return {
        "name": "Weather desk",
        "system_prompt": "You answer weather questions.",
        "voice": {"voice_id": "ivy"},
        "llm": [{"base_url": f"{base}/v1", "model": "weather-model", "api_key": LLM_KEY}],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
                "http": {
                    "url": f"{base}/weather",
                    "http_method": "GET",
                    "headers": [{"name": "Authorization", "value": TOOL_KEY}],
                },
            }
        ],
    }


async def converse(url: str, agent_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"agent_id": agent_id}}))
        message = {"type": "conversation.message", "role": "user", "content": "Weather in Paris?"}
        await ws.send(json.dumps(message))
        await ws.send(json.dumps({"type": "reply.create"}))
        done = 0
        async for raw in ws:
            event = json.loads(raw)
            events.append(event)
            done += event["type"] == "reply.done"
            if done == 2:
                break
        await ws.send(json.dumps({"type": "session.end"}))
        async for raw in ws:
            events.append(json.loads(raw))
    return events


def test_stored_agent_with_custom_llm_and_http_tool(
    tmp_path: Path, upstream: tuple[str, Upstream]
) -> None:
    base, up = upstream
    with background_server(
        providers="fake", data_dir=str(tmp_path), http_tool_allowed_hosts=["127.0.0.1"]
    ) as (url, _):
        http = url.replace("ws://", "http://").removesuffix("/v1/ws")
        created = httpx.post(f"{http}/v1/agents", json=agent_body(base)).json()
        assert LLM_KEY not in json.dumps(created) and "tool-secret" not in json.dumps(created)
        events = asyncio.run(converse(url, created["id"]))

        ready = next(e for e in events if e["type"] == "session.ready")
        assert LLM_KEY not in json.dumps(ready)
        assert ready["config"]["llm"] == [
            {"base_url": f"{base}/v1", "model": "weather-model", "reasoning_effort": None}
        ]
        call = next(e for e in events if e["type"] == "tool.call")
        assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
        texts = [e["text"] for e in events if e["type"] == "transcript.agent"]
        assert texts == ["", "It is sunny in Paris."]

        # the server called the tool itself, with the stored secret, and fed the result back
        ((tool_headers, query),) = up.tool_requests
        assert tool_headers["authorization"] == TOOL_KEY and query == {"city": "Paris"}
        assert all(h["authorization"] == f"Bearer {LLM_KEY}" for h, _ in up.chat_requests)
        followup = up.chat_requests[-1][1]["messages"]
        assert followup[-1]["role"] == "tool" and '{"forecast":"sunny"}' in followup[-1]["content"]

        session_id = ready["session_id"]
        record = _wait_ended(http, session_id)
        assert record["agent_id"] == created["id"] and record["public_close_reason"] == "client_end"
        timeline_url = next(a["url"] for a in record["artifacts"] if a["type"] == "timeline")
        timeline = httpx.get(timeline_url).json()  # signed: no Authorization needed
        turns = timeline["turns"]
        assert [t["trigger"] for t in turns] == ["reply_create", "tool_result"]
        (tool_call,) = turns[0]["tool_calls"]
        assert tool_call["result"] == '{"forecast":"sunny"}' and tool_call["duration_ms"] >= 0
        assert "tool-secret" not in json.dumps(timeline) and LLM_KEY not in json.dumps(record)


def _wait_ended(http: str, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        record: dict[str, Any] = httpx.get(f"{http}/v1/sessions/{session_id}").json()
        if record.get("status") == "completed" and record.get("artifacts"):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.1)

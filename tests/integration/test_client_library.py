"""The ``vocalis.client`` library against a real server: events, tools, resume, errors."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from tests.e2e.live_server import LiveServer, live_server
from vocalis.client import (
    ConnectionLost,
    Event,
    SessionError,
    VoiceAgentClient,
    connect,
    describe_error,
    tool_definition,
    wav_to_pcm16,
)
from vocalis.client.tools import load_tools, run_tool

SPEECH = Path(__file__).parents[1] / "data" / "tts_close_today.wav"
KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("client-server")) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("keyed-server"), api_keys=[KEY]) as running:
        yield running


async def _until(events: AsyncIterator[Event], kind: str, timeout: float = 30) -> Event:
    async def scan() -> Event:
        async for event in events:
            if event["type"] == kind:
                return event
        raise AssertionError(f"session ended before {kind}")

    return await asyncio.wait_for(scan(), timeout)


async def test_events_iterator_gives_a_whole_turn(server: LiveServer) -> None:
    client = await connect(server.ws_url, session={"output": {"voice": "james"}})
    assert client.session_id is not None and client.session_id.startswith("sess_")
    assert client.config is not None and client.config["output"]["voice"] == "james"
    events = client.events()
    sender = asyncio.create_task(client.stream_audio(wav_to_pcm16(SPEECH) + bytes(48_000 * 2)))
    user = await _until(events, "transcript.user")
    assert user["text"].startswith("speech ")
    audio = await _until(events, "reply.audio")
    assert audio["data"]
    agent = await _until(events, "transcript.agent")
    assert agent["text"] == f"You said: {user['text']}"
    sender.cancel()
    ended = await client.end()
    assert ended is not None and ended["reason"] == "client_end"


async def test_tool_calls_are_answered_by_callables(server: LiveServer) -> None:
    seen: list[dict[str, Any]] = []

    async def lookup_order(order_id: str) -> dict[str, str]:
        """Look up an order."""
        seen.append({"order_id": order_id})
        return {"status": "shipped"}

    client = await connect(server.ws_url, tools={"lookup_order": lookup_order})
    assert [t["name"] for t in client.config["tools"]] == ["lookup_order"]  # type: ignore[index]
    events = client.events()
    await client.send_message('call lookup_order {"order_id": "ORD-1"}')
    await client.create_reply()
    call = await _until(events, "tool.call")
    assert call["arguments"] == {"order_id": "ORD-1"}
    followup = await _until(events, "transcript.agent")  # the carrying reply (no speech)
    while followup["text"] == "":
        followup = await _until(events, "transcript.agent")
    assert followup["text"] == 'Tool result: {"status":"shipped"}.'
    assert seen == [{"order_id": "ORD-1"}]
    await client.end()


async def test_dropped_connection_resumes_the_same_session(server: LiveServer) -> None:
    received: list[Event] = []
    client = VoiceAgentClient(server.ws_url, on_event=received.append)
    await client.connect()
    session_id = client.session_id
    ws = client._ws
    assert ws is not None
    ws.transport.abort()  # a network drop: no close frame, no session.end
    for _ in range(200):
        if client.resumes:
            break
        await asyncio.sleep(0.05)
    assert client.resumes == 1
    assert client.session_id == session_id
    readies = [e for e in received if e["type"] == "session.ready"]
    assert len(readies) == 2 and readies[1]["session_id"] == session_id
    # the resumed session still converses
    await client.send_message("hello again")
    await client.create_reply()
    for _ in range(200):
        if any(e["type"] == "transcript.agent" for e in received):
            break
        await asyncio.sleep(0.05)
    texts = [e["text"] for e in received if e["type"] == "transcript.agent"]
    assert texts == ["You said: hello again"]
    ended = await client.end()
    assert ended is not None and ended["reason"] == "client_end"


async def test_bad_credential_raises_a_readable_session_error(keyed_server: LiveServer) -> None:
    with pytest.raises(SessionError) as caught:
        await connect(keyed_server.ws_url, api_key="wrong")
    assert caught.value.code == "unauthorized"
    assert "API key" in str(caught.value) and "Authentication failed" in str(caught.value)
    client = await connect(keyed_server.ws_url, api_key=KEY)
    assert client.session_id is not None
    await client.end()


async def test_unreachable_server_raises_connection_lost() -> None:
    with pytest.raises(ConnectionLost):
        await connect("ws://127.0.0.1:9/v1/ws")


def test_every_error_code_has_an_explanation() -> None:
    codes = [
        "unauthorized", "invalid_format", "invalid_audio", "audio_rate_violation",
        "invalid_value", "agent_not_found", "invalid_config", "agent_id_not_first",
        "immutable_field", "invalid_webhook", "session_not_found", "session_forbidden",
        "at_capacity", "internal_error", "concurrency_exceeded", "session_expired",
    ]  # fmt: skip
    for code in codes:
        text = describe_error({"code": code, "message": "m", "param": None})
        assert not text.startswith("The server reported error"), code
        assert text.endswith(f": m [{code}]")


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def get_weather(
    city: str,
    days: int,
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    tags: list[str] | None = None,
    note: Annotated[str, "free text for the forecaster"] = "",
) -> str:
    """Weather forecast for a city.

    Longer explanation that is not part of the description.

    Args:
        city: the city name, e.g. Paris.
        days: how many days ahead (1-7).
    """
    return "sunny"


def test_tool_definition_is_derived_from_the_signature() -> None:
    definition = tool_definition(get_weather)
    assert definition["name"] == "get_weather"
    assert definition["description"] == "Weather forecast for a city."
    params = definition["parameters"]
    assert params["required"] == ["city", "days"]
    props = params["properties"]
    assert props["city"] == {"type": "string", "description": "the city name, e.g. Paris."}
    assert props["days"] == {"type": "integer", "description": "how many days ahead (1-7)."}
    assert props["unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert props["detail"] == {"enum": ["short", "long"], "type": "string"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["note"] == {"type": "string", "description": "free text for the forecaster"}


async def test_run_tool_encodes_results_and_errors() -> None:
    def fails() -> None:
        raise ValueError("no such order")

    assert await run_tool(lambda x: {"x": x}, {"x": 1}) == ('{"x":1}', False)
    assert await run_tool(fails, {}) == ("ValueError: no such order", True)
    assert (await run_tool(get_weather, {"nope": 1}))[1] is True  # bad arguments: an error


def test_load_tools_accepts_dicts_lists_and_callables() -> None:
    assert list(load_tools("tests.integration.test_client_library:get_weather")) == ["get_weather"]
    assert list(load_tools("tests.integration.test_client_library:_TOOL_LIST")) == ["get_weather"]
    with pytest.raises(ValueError):
        load_tools("no_colon_here")


_TOOL_LIST = [get_weather]

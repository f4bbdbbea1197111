"""The WebSocket conformance suite's fixtures: the real app behind Starlette's ``TestClient``.

``ws_server`` starts the app with fake providers and no storage (so every ``agent_id`` is
unknown); ``make_ws_server(**settings)`` starts one with other settings. ``WsClient`` wraps one
socket: every event it receives is checked against the exact field sets of contract §8 and the ID
formats of §1, receives time out instead of hanging, and a server close surfaces as Starlette's
``WebSocketDisconnect`` carrying the close code.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

import vocalis.server.app as app_module
from vocalis.providers.base import ProviderSet
from vocalis.providers.fake import build_fake_providers
from vocalis.server.app import create_app
from vocalis.settings import Settings

Event = dict[str, Any]

ID_RE = {
    prefix: re.compile(rf"^{prefix}_[0-9a-f]{{32}}$") for prefix in ("sess", "resp", "msg", "call")
}
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.~]{1,2048}$")  # opaque, URL-safe, at most 2048 chars

# §8: every field of each server event besides `type` and `timestamp`.
EVENT_FIELDS: dict[str, frozenset[str]] = {
    "session.ready": frozenset({"session_id", "config", "expires_at", "resume_token"}),
    "session.updated": frozenset({"config"}),
    "session.error": frozenset({"code", "message", "param", "session_id"}),
    "session.ended": frozenset({"session_duration_seconds", "audio_duration_seconds", "reason"}),
    "input.speech.started": frozenset(),
    "input.speech.stopped": frozenset(),
    "transcript.user.delta": frozenset({"item_id", "text"}),
    "transcript.user": frozenset({"item_id", "text"}),
    "reply.started": frozenset({"reply_id", "item_id"}),
    "reply.audio": frozenset({"reply_id", "data"}),
    "transcript.agent.delta": frozenset({"reply_id", "item_id", "delta", "start_ms", "end_ms"}),
    "transcript.agent": frozenset({"reply_id", "item_id", "text", "interrupted"}),
    "reply.done": frozenset({"reply_id", "status"}),
    "tool.call": frozenset({"call_id", "name", "arguments", "args", "reply_id"}),
    "reply.error": frozenset(
        {
            "reply_id",
            "code",
            "message",
            "retryable",
            "provider_code",
            "provider_param",
            "status_code",
        }
    ),
}
ERROR_CODES = frozenset(
    {
        "unauthorized",
        "invalid_format",
        "invalid_audio",
        "audio_rate_violation",
        "invalid_value",
        "agent_not_found",
        "invalid_config",
        "agent_id_not_first",
        "immutable_field",
        "invalid_webhook",
        "session_not_found",
        "session_forbidden",
        "at_capacity",
        "internal_error",
    }
)
CONFIG_KEYS = frozenset(
    {"id", "system_prompt", "greeting", "input", "output", "tools", "llm", "pre_connect_requests"}
)
INPUT_KEYS = frozenset(
    {
        "type",
        "format",
        "keyterms",
        "turn_detection",
        "transcription_mode",
        "transcription_prompt",
        "language_codes",
        "voice_focus",
        "voice_focus_threshold",
        "continuous_partials",
    }
)
OUTPUT_KEYS = frozenset({"type", "voice", "format", "volume"})
TURN_DETECTION_KEYS = frozenset(
    {
        "type",
        "vad_threshold",
        "min_silence",
        "max_silence",
        "interrupt_response",
        "interruption_delay",
        "uninterruptible_turns",
    }
)
TOOL_ECHO_KEYS = frozenset(
    {
        "type",
        "name",
        "description",
        "parameters",
        "timeout_seconds",
        "execution_mode",
        "http",
        "response_instructions",
        "deployment_id",
        "session_update",
        "image_tag",
    }
)


def assert_id(value: Any, prefix: str) -> None:
    assert isinstance(value, str) and ID_RE[prefix].match(value), f"bad {prefix} id: {value!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_config(config: Any) -> None:
    """§6.7: every key of the resolved configuration is present."""
    assert isinstance(config, dict)
    assert set(config) - {"webhook"} == CONFIG_KEYS, sorted(config)
    assert_id(config["id"], "sess")
    assert isinstance(config["system_prompt"], str)
    assert config["greeting"] is None or isinstance(config["greeting"], str)
    text = {"type": "text"}  # §6.8: a text side echoes only its type
    assert config["input"] == text or set(config["input"]) == INPUT_KEYS
    assert config["output"] == text or set(config["output"]) == OUTPUT_KEYS
    for side in ("input", "output"):
        if config[side] != text:
            assert set(config[side]["format"]) == {"encoding", "sample_rate"}
    td = config["input"].get("turn_detection")
    assert td is None or set(td) == TURN_DETECTION_KEYS
    for tool in config["tools"]:
        assert set(tool) - {"id", "dtmf_collected_arguments"} == TOOL_ECHO_KEYS
    if "webhook" in config:
        assert set(config["webhook"]) == {"url", "events"}


def check_event(event: Any) -> None:
    """The exact field set of §8, a float ``timestamp`` and the ID formats of §1."""
    assert isinstance(event, dict), event
    type_ = event.get("type")
    assert type_ in EVENT_FIELDS, f"undefined server event type {type_!r}"
    assert set(event) == {"type", "timestamp"} | EVENT_FIELDS[type_], event
    assert isinstance(event["timestamp"], float), event
    for key, prefix in (("reply_id", "resp"), ("item_id", "msg"), ("call_id", "call")):
        if key in event:
            assert_id(event[key], prefix)
    if type_ == "session.ready":
        assert_id(event["session_id"], "sess")
        check_config(event["config"])
        assert event["config"]["id"] == event["session_id"]
        assert isinstance(event["expires_at"], int) and not isinstance(event["expires_at"], bool)
        assert isinstance(event["resume_token"], str) and TOKEN_RE.match(event["resume_token"])
    elif type_ == "session.updated":
        check_config(event["config"])
    elif type_ == "session.error":
        assert event["code"] in ERROR_CODES
        assert isinstance(event["message"], str) and event["message"]
        assert event["param"] is None or isinstance(event["param"], str)
        if event["session_id"] is not None:
            assert_id(event["session_id"], "sess")
    elif type_ == "session.ended":
        assert _is_number(event["session_duration_seconds"])
        audio = event["audio_duration_seconds"]
        assert audio is None or _is_number(audio)
        assert isinstance(event["reason"], str)
    elif type_ in ("transcript.user.delta", "transcript.user", "transcript.agent"):
        assert isinstance(event["text"], str)
    elif type_ == "reply.audio":
        assert isinstance(event["data"], str)
        assert base64.b64decode(event["data"], validate=True)
    elif type_ == "transcript.agent.delta":
        assert isinstance(event["delta"], str) and event["delta"]
        for key in ("start_ms", "end_ms"):
            value = event[key]
            assert value is None or (isinstance(value, int) and not isinstance(value, bool))
    if type_ == "transcript.agent":
        assert isinstance(event["interrupted"], bool)
    elif type_ == "reply.done":
        assert event["status"] in ("completed", "interrupted")
    elif type_ == "tool.call":
        assert isinstance(event["name"], str)
        assert isinstance(event["arguments"], dict)
        assert event["args"] == event["arguments"]
    elif type_ == "reply.error":
        assert event["code"] in ("llm_error", "tts_error", "internal_error")
        assert isinstance(event["retryable"], bool)
        assert event["status_code"] is None or isinstance(event["status_code"], int)
        for key in ("provider_code", "provider_param"):
            assert event[key] is None or isinstance(event[key], str)


async def _receive(rx: MemoryObjectReceiveStream[Any], timeout: float) -> Any:
    with anyio.fail_after(timeout):
        return await rx.receive()


async def _receive_many(rx: MemoryObjectReceiveStream[Any], count: int, timeout: float) -> Any:
    with anyio.fail_after(timeout):
        return [await rx.receive() for _ in range(count)]


async def _send_many(tx: MemoryObjectSendStream[Any], messages: list[Any]) -> None:
    for message in messages:
        await tx.send(message)


class WsClient:
    """One client socket over the real ``/v1/ws`` route, with timeouts and event checks."""

    def __init__(self, session: WebSocketTestSession) -> None:
        self.session = session
        self.events: list[Event] = []  # every event received so far, in order
        self.close_code: int | None = None

    # ------------------------------------------------------------------ sending
    def send(self, message: Mapping[str, Any] | str) -> None:
        self.session.send_text(message if isinstance(message, str) else json.dumps(message))

    def send_bytes(self, data: bytes) -> None:
        self.session.send_bytes(data)

    def send_burst(self, texts: list[str]) -> None:
        """Queue many text frames in one hop to the server's loop (a burst)."""
        frames = [{"type": "websocket.receive", "text": t} for t in texts]
        self.session.portal.call(_send_many, self.session._receive_tx, frames)

    def disconnect(self) -> None:
        """Drop the socket without ``session.end`` (an unclean disconnect, §14)."""
        self.session.close(1006)

    # ------------------------------------------------------------------ receiving
    def _accept(self, message: Any) -> Event:
        if message["type"] == "websocket.close":
            self.close_code = int(message.get("code", 1000))
            raise WebSocketDisconnect(code=self.close_code, reason=message.get("reason") or "")
        assert message["type"] == "websocket.send", message
        assert message.get("text") is not None, "the server sends only text frames (§2)"
        event = json.loads(message["text"])
        check_event(event)
        self.events.append(event)
        return event  # type: ignore[no-any-return]

    def recv(self, timeout: float = 5.0) -> Event:
        """The next event; ``WebSocketDisconnect`` when the server closed instead."""
        message = self.session.portal.call(_receive, self.session._send_rx, timeout)
        return self._accept(message)

    def recv_many(self, count: int, timeout: float = 30.0) -> list[Event]:
        messages = self.session.portal.call(_receive_many, self.session._send_rx, count, timeout)
        return [self._accept(m) for m in messages]

    def expect(self, type_: str, timeout: float = 5.0) -> Event:
        """The next event, which must be of ``type_``."""
        event = self.recv(timeout)
        assert event["type"] == type_, f"expected {type_}, got {event}"
        return event

    def until(self, type_: str, timeout: float = 10.0, skip_audio: bool = False) -> list[Event]:
        """Events up to and including the next ``type_`` (``reply.audio`` left out if asked)."""
        deadline = time.monotonic() + timeout
        got: list[Event] = []
        while True:
            event = self.recv(max(0.01, deadline - time.monotonic()))
            if not (skip_audio and event["type"] == "reply.audio"):
                got.append(event)
            if event["type"] == type_:
                return got

    def expect_error(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        session_id: str | None = None,
        timeout: float = 5.0,
    ) -> Event:
        event = self.expect("session.error", timeout)
        expected = {"code": code, "message": message, "param": param, "session_id": session_id}
        assert {k: event[k] for k in expected} == expected
        return event

    def expect_close(self, timeout: float = 5.0) -> int:
        """The server closes next (no further event); returns the close code."""
        with pytest.raises(WebSocketDisconnect) as closed:
            event = self.recv(timeout)
            raise AssertionError(f"expected a close, got {event}")
        return closed.value.code

    def assert_quiet(self, seconds: float) -> None:
        """Nothing arrives for ``seconds``."""
        try:
            event = self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {event}")

    # ------------------------------------------------------------------ conversations
    def start(self, session: Mapping[str, Any] | None = None) -> Event:
        """First ``session.update``: ``session.updated`` then ``session.ready`` (§4.2)."""
        self.send({"type": "session.update", "session": dict(session or {})})
        updated = self.expect("session.updated")
        ready = self.expect("session.ready")
        assert updated["config"] == ready["config"]
        return ready

    def reply(self, instructions: str = "K", timeout: float = 10.0) -> list[Event]:
        """A ``reply.create`` whose one-shot instruction the fake LLM speaks; its events."""
        self.send({"type": "reply.create", "instructions": instructions})
        events = self.until("reply.done", timeout)
        started = [e for e in events if e["type"] == "reply.started"]
        assert started, [e["type"] for e in events]
        return events[events.index(started[-1]) :]

    def assert_alive(self, instructions: str = "K") -> None:
        """The session still answers: a ``reply.create`` gets a completed reply."""
        events = self.reply(instructions)
        assert events[-1]["status"] == "completed"
        assert [e for e in events if e["type"] == "transcript.agent"][-1]["text"] == instructions


class WsServer:
    """A running app; ``connect`` opens a socket to it."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def state(self) -> Any:
        return self.client.app.state.vocalis  # type: ignore[attr-defined]

    @contextmanager
    def connect(
        self,
        path: str = "/v1/ws",
        *,
        credential: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[WsClient]:
        all_headers = dict(headers or {})
        if credential is not None:
            all_headers["Authorization"] = f"Bearer {credential}"
        with self.client.websocket_connect(path, headers=all_headers) as session:
            yield WsClient(session)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the app has finished starting (a server that connects to a store at start
        refuses sockets before that with at_capacity, rightly; a busy machine takes longer)."""
        deadline = time.monotonic() + timeout
        while not self.state.ready.is_set():
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.02)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's event loop (read engine state safely)."""

        async def run() -> Any:
            return fn(*args)

        return self.client.portal.call(run)  # type: ignore[union-attr]

    def session_state(self, session_id: str) -> str | None:
        """``active``/``disconnected`` for a live session, ``None`` once it is gone."""

        def read() -> str | None:
            session = self.state.manager.get(session_id)
            return session.state.value if session is not None else None

        return self.call(read)  # type: ignore[no-any-return]

    def wait_session_state(self, session_id: str, state: str | None, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.session_state(session_id) != state:
            assert time.monotonic() < deadline, f"{session_id} never became {state}"
            time.sleep(0.01)


async def _no_storage(settings: Settings) -> None:
    return None


MakeServer = Callable[..., WsServer]


@pytest.fixture
def make_ws_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeServer]:
    """Start an app with fake providers, no storage and the given ``Settings`` fields."""
    monkeypatch.setattr(app_module, "_open_storage", _no_storage)
    with ExitStack() as stack:

        def make(providers: ProviderSet | None = None, **settings: Any) -> WsServer:
            # The load signal is every model worker of the process (one server per process in
            # production); here other tests' workers live on, so a test server only consults
            # it when the test asks (test_ws_admission).
            fields: dict[str, Any] = {
                "providers": "fake",
                "data_dir": str(tmp_path),
                "admission_max_lag_seconds": 0,
            }
            fields.update(settings)
            app = create_app(Settings(**fields), providers=providers or build_fake_providers())
            client: AbstractContextManager[TestClient] = TestClient(app)
            return WsServer(stack.enter_context(client))

        yield make


@pytest.fixture
def ws_server(make_ws_server: MakeServer) -> WsServer:
    return make_ws_server()

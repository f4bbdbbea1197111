"""The bounded outbox of one WebSocket connection (server/ws.py) and the typed app state."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette

from vocalis.protocol import server_events as ev
from vocalis.server.state import app_state
from vocalis.server.ws import (
    MAX_QUEUED_CHARS,
    Outbox,
    TransportState,
    WebSocketTransport,
)
from vocalis.settings import Settings


def test_bound_is_the_allowed_lag_plus_the_lead_in_chunks() -> None:
    box = Outbox.for_settings(Settings(outbox_max_audio_ms=5000, output_lead_ms=200))
    assert box.max_audio_chunks == 260  # (5000 + 200) / 20
    box = Outbox.for_settings(Settings(outbox_max_audio_ms=1000, output_chunk_ms=30))
    assert box.max_audio_chunks == 40  # ceil(1200 / 30)
    assert box.max_chars == MAX_QUEUED_CHARS


def test_audio_beyond_the_bound_overflows_but_control_events_do_not() -> None:
    box = Outbox(max_audio_chunks=3)
    assert all(box.put("a", audio=True) for _ in range(3))
    assert all(box.put("control", audio=False) for _ in range(1000))  # never counted as audio
    assert not box.put("a", audio=True)


def test_popping_frees_room_and_keeps_order() -> None:
    box = Outbox(max_audio_chunks=2)
    for frame in ("a1", "c1", "a2"):
        box.put(frame, audio=frame.startswith("a"))
    assert box.pop() == "a1"
    assert box.put("a3", audio=True)
    assert [box.pop() for _ in range(4)] == ["c1", "a2", "a3", None]
    assert (box.audio_chunks, box.chars, len(box)) == (0, 0, 0)


def test_text_without_audio_is_capped() -> None:
    box = Outbox(max_audio_chunks=10, max_chars=100)
    assert box.put("x" * 60, audio=False)
    assert not box.put("x" * 60, audio=False)


class StalledSocket:
    """A socket whose client reads ``reads`` frames, then stops: the next send never returns."""

    def __init__(self, reads: int) -> None:
        self.reads = reads
        self.sent: list[dict[str, Any]] = []
        self.closed_with: int | None = None

    async def send_text(self, text: str) -> None:
        if len(self.sent) >= self.reads:
            await asyncio.Event().wait()
        self.sent.append(json.loads(text))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code


async def test_a_client_that_stops_reading_overflows_the_transport() -> None:
    socket = StalledSocket(reads=2)
    transport = WebSocketTransport(Outbox(max_audio_chunks=5))
    writer = transport.start(socket)  # type: ignore[arg-type]
    transport.send(ev.reply_started("resp_1", "msg_1"))
    for _ in range(3):
        transport.send(ev.reply_audio("resp_1", "AAAA"))
    await asyncio.sleep(0)  # the writer sends two, then blocks on the third: one left queued
    assert [e["type"] for e in socket.sent] == ["reply.started", "reply.audio"]
    assert transport.outbox.audio_chunks == 1
    for _ in range(4):
        transport.send(ev.reply_audio("resp_1", "AAAA"))
    assert transport.state is TransportState.OPEN  # 5 queued: at the bound, not over it
    transport.send(ev.reply_audio("resp_1", "AAAA"))
    assert transport.state is TransportState.OVERFLOWED
    assert len(transport.outbox) == 0  # the backlog is released at once
    with pytest.raises(asyncio.CancelledError):
        await writer  # the stuck send was abandoned
    transport.send(ev.reply_done("resp_1", "completed"))
    transport.close(1000)
    assert len(transport.outbox) == 0 and transport.close_code is None  # nothing after overflow


async def test_a_reading_client_gets_everything_then_the_close() -> None:
    socket = StalledSocket(reads=10_000)
    transport = WebSocketTransport(Outbox(max_audio_chunks=2))
    writer = transport.start(socket)  # type: ignore[arg-type]
    for _ in range(50):  # far more audio than the bound, but the writer keeps up
        transport.send(ev.reply_audio("resp_1", "AAAA"))
        await asyncio.sleep(0)
    transport.send(ev.reply_done("resp_1", "completed"))
    transport.close(1000)
    await writer
    assert len(socket.sent) == 51 and socket.sent[-1]["type"] == "reply.done"
    assert socket.closed_with == 1000
    assert transport.state is TransportState.CLOSING


def test_app_state_refuses_an_app_the_factory_did_not_build() -> None:
    with pytest.raises(RuntimeError, match="create_app"):
        app_state(Starlette())

"""A client that stops reading (server/ws.py): closed 1008 once too much audio is queued, its
session detached and resumable; a client that keeps reading, however slowly, is never cut.

Starlette's test socket buffers server output without limit, so a stalled client could never be
told apart from a reading one. ``UnbufferedSession`` gives the server→client stream no buffer at
all: like a TCP connection whose window is full, each server send waits until the client reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.abc
from starlette.testclient import WebSocketTestSession
from starlette.types import Message

from tests.integration.conftest import MakeServer, WsClient, WsServer

LONG = "word " * 40  # ten seconds of fake speech (50 ms per character)


class UnbufferedSession(WebSocketTestSession):
    async def _run(self, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        send_tx, send_rx = anyio.create_memory_object_stream[Message](0)
        receive_tx, receive_rx = anyio.create_memory_object_stream[Message](math.inf)
        with send_tx, send_rx, receive_tx, receive_rx, anyio.CancelScope() as cs:
            self._receive_tx = receive_tx
            self._send_rx = send_rx
            task_status.started(cs)
            await self.app(self.scope, receive_rx.receive, send_tx.send)
            await anyio.sleep_forever()


@contextmanager
def connect_unbuffered(server: WsServer) -> Iterator[WsClient]:
    plain: Any = server.client.websocket_connect("/v1/ws")  # built, not yet connected
    with UnbufferedSession(plain.app, plain.scope, plain.portal_factory) as session:
        yield WsClient(session)


def test_a_client_that_stops_reading_is_closed_and_its_session_can_resume(
    make_ws_server: MakeServer,
) -> None:
    server = make_ws_server(outbox_max_audio_ms=100)
    with connect_unbuffered(server) as client:
        session_id = client.start()["session_id"]
        client.send({"type": "reply.create", "instructions": LONG})
        # The client reads nothing more: the server gives the connection up on its own.
        server.wait_session_state(session_id, "disconnected", timeout=10)
        assert client.expect_close() == 1008
    with server.connect() as client:
        client.send({"type": "session.resume", "session_id": session_id})
        assert client.expect("session.ready")["session_id"] == session_id
        client.assert_alive()


def test_a_client_that_reads_at_its_own_pace_gets_the_whole_reply(
    make_ws_server: MakeServer,
) -> None:
    server = make_ws_server(outbox_max_audio_ms=1000)
    with connect_unbuffered(server) as client:
        client.start()
        events = client.reply("word " * 12)
        assert events[-1] == {**events[-1], "type": "reply.done", "status": "completed"}
        assert sum(e["type"] == "reply.audio" for e in events) > 60  # the bound: (1000 + 200) / 20

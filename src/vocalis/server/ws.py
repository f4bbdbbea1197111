"""The WebSocket edge (§2): frames in, events out. All protocol logic lives in
:class:`~vocalis.session.connection.Connection`; this module only moves bytes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from vocalis.protocol.server_events import ServerEvent
from vocalis.server.auth import presented_credential, websocket_credential
from vocalis.server.starting import refuse_while_starting, wait_until_ready
from vocalis.session.connection import Connection

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 1024 * 1024  # larger frames (up to the transport's 16 MiB) get invalid_format


class _Close:
    def __init__(self, code: int) -> None:
        self.code = code


class WebSocketTransport:
    """Queues events for one writer task, so the engine never awaits a slow client."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | _Close] = asyncio.Queue()
        self.closing = False

    def send(self, event: ServerEvent) -> None:
        if not self.closing:
            self.queue.put_nowait(json.dumps(event, separators=(",", ":"), ensure_ascii=False))

    def close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            self.queue.put_nowait(_Close(code))

    async def write(self, websocket: WebSocket) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, _Close):
                await websocket.close(item.code)
                return
            await websocket.send_text(item)


async def voice_agent_socket(websocket: WebSocket) -> None:
    state: Any = websocket.app.state.vocalis
    await websocket.accept()
    if not await wait_until_ready(state):
        await refuse_while_starting(websocket, state)
        return
    transport = WebSocketTransport()
    raw = presented_credential(websocket.headers, websocket.query_params)
    credential = websocket_credential(raw, state.settings, state.tokens, state.manager)
    conn = Connection(state.manager, transport, credential, state.clock)
    writer = asyncio.create_task(transport.write(websocket))
    timers: asyncio.Task[None] | None = None
    try:
        if conn.authenticate():
            timers = asyncio.create_task(conn.first_message_timeout())
            await _read(websocket, conn, writer)
        await asyncio.wait_for(asyncio.shield(writer), timeout=5)
    except (WebSocketDisconnect, RuntimeError, TimeoutError, OSError):
        pass
    finally:
        if not transport.closing:
            conn.on_disconnect()
        for task in (writer, timers):
            if task is not None:
                task.cancel()


async def _read(websocket: WebSocket, conn: Connection, writer: asyncio.Task[None]) -> None:
    while not writer.done() and not conn.closed:
        receive = asyncio.create_task(websocket.receive())
        done, _ = await asyncio.wait({receive, writer}, return_when=asyncio.FIRST_COMPLETED)
        if receive not in done:
            receive.cancel()
            return
        message = receive.result()
        if message["type"] == "websocket.disconnect":
            conn.on_disconnect()
            return
        text = message.get("text")
        if text is not None:
            if _too_large(text):
                conn.on_too_large()
            else:
                await conn.on_text(text)
        elif message.get("bytes") is not None:
            conn.on_binary()


def _too_large(text: str) -> bool:
    """A frame's size is its UTF-8 length: 1 to 4 bytes per character (§2)."""
    if len(text) > MAX_TEXT_BYTES:
        return True
    if len(text) * 4 <= MAX_TEXT_BYTES:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES

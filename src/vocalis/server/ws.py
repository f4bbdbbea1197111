"""The WebSocket edge (§2): frames in, events out. All protocol logic lives in
:class:`~vocalis.session.connection.Connection`; this module only moves bytes.

Backpressure. The engine never awaits a client: :meth:`WebSocketTransport.send` queues the
serialised event in an :class:`Outbox` that one writer task drains into the socket. A client that
stops reading would make that queue grow without end, so it is bounded, and the policy is:

* Nothing is ever dropped to make room. Audio, transcripts and control events keep their order
  (§9); dropping any of them would desynchronise the client (a ``reply.done`` without its audio,
  a delta without its word).
* Instead the connection is given up once more than ``outbox_max_audio_ms`` (5 s) of reply audio
  is queued *beyond* the reply's lead (``output_lead_ms``, sent at once by design). Pacing keeps
  a reading client within the lead, so the excess is how far the client is behind real-time
  playout. Queued audio is counted in chunks of ``output_chunk_ms`` (a reply's last chunk may be
  shorter, so the count errs towards closing a little early).
* Events without audio are capped too, at :data:`MAX_QUEUED_CHARS` of queued text: a text-only
  session or a burst of ``session.updated`` echoes from a client that never reads.
* On overflow the queued events are discarded, the close is sent as ``1008`` with the reason
  :data:`SLOW_CLIENT_REASON`, and the session is *detached*, not ended: to the session this is an
  unclean disconnect (§14.1), so the client may ``session.resume`` within the grace window. The
  contract (§16.2) names no close code for this case; 1008 is RFC 6455's "policy violation" and
  the code the contract uses for a client at fault. No ``session.error`` is sent: the client is
  not reading, and the §16.1 catalogue has no code for it.

Memory per connection is therefore bounded: at the defaults (5.2 s of 24 kHz PCM in 20 ms chunks,
about 1.4 KB of JSON each) about 0.4 MB of queued audio, and never more than 4 MiB of queued text.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import math

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from vocalis.protocol import errors
from vocalis.protocol.server_events import ServerEvent
from vocalis.server.auth import presented_credential, websocket_credential
from vocalis.server.starting import refuse_for_now, wait_until_ready
from vocalis.server.state import app_state
from vocalis.session.connection import Connection
from vocalis.session.shared import SharedStateUnavailable
from vocalis.settings import Settings

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 1024 * 1024  # larger frames (up to the transport's 16 MiB) get invalid_format
# Room for the largest legitimate burst without audio: the two config echoes (session.updated,
# session.ready) of a session.update of up to MAX_TEXT_BYTES, twice over.
MAX_QUEUED_CHARS = 4 * MAX_TEXT_BYTES
CLOSE_SLOW_CLIENT = errors.CLOSE_POLICY  # 1008: see the module docstring
SLOW_CLIENT_REASON = "Client is not reading: too much server output queued"
CLOSE_TIMEOUT_SECONDS = 5.0  # how long a close frame (or the last queued events) may take


class Outbox:
    """Serialised events waiting for one client, with the bound of the module docstring.

    Sans-I/O: :meth:`put` says whether the bound still holds; the caller decides what to do.
    """

    def __init__(self, max_audio_chunks: int, max_chars: int = MAX_QUEUED_CHARS) -> None:
        self.max_audio_chunks = max_audio_chunks
        self.max_chars = max_chars
        self._frames: collections.deque[tuple[str, bool]] = collections.deque()
        self.audio_chunks = 0  # queued reply.audio events
        self.chars = 0  # queued text, all events

    @classmethod
    def for_settings(cls, settings: Settings) -> Outbox:
        allowed_ms = settings.outbox_max_audio_ms + settings.output_lead_ms
        return cls(math.ceil(allowed_ms / settings.output_chunk_ms))

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str, *, audio: bool) -> bool:
        """Queue ``frame``; ``False`` when the queue is now over its bound (it is kept anyway)."""
        self._frames.append((frame, audio))
        self.audio_chunks += audio
        self.chars += len(frame)
        return self.audio_chunks <= self.max_audio_chunks and self.chars <= self.max_chars

    def pop(self) -> str | None:
        if not self._frames:
            return None
        frame, audio = self._frames.popleft()
        self.audio_chunks -= audio
        self.chars -= len(frame)
        return frame

    def clear(self) -> None:
        self._frames.clear()
        self.audio_chunks = self.chars = 0


class TransportState(enum.Enum):
    OPEN = "open"  # events are queued for the writer
    CLOSING = "closing"  # the server chose a close code; it follows the events already queued
    OVERFLOWED = "overflowed"  # the client stopped reading; queued events were discarded


class WebSocketTransport:
    """Queues events for one writer task, so the engine never awaits a slow client."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.state = TransportState.OPEN
        self.close_code: int | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def send(self, event: ServerEvent) -> None:
        if self.state is not TransportState.OPEN:
            return
        frame = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if self.outbox.put(frame, audio=event["type"] == "reply.audio"):
            self._wake.set()
            return
        log.warning(
            "closing a connection whose client stopped reading (%d events queued)",
            len(self.outbox),
        )
        self.state = TransportState.OVERFLOWED
        self.outbox.clear()
        if self._writer is not None:
            self._writer.cancel()  # it is stuck in a send that the client will not take

    def close(self, code: int) -> None:
        if self.state is TransportState.OPEN:
            self.state = TransportState.CLOSING
            self.close_code = code
            self._wake.set()

    def start(self, websocket: WebSocket) -> asyncio.Task[None]:
        self._writer = asyncio.create_task(self._write(websocket))
        return self._writer

    async def _write(self, websocket: WebSocket) -> None:
        while True:
            frame = self.outbox.pop()
            if frame is not None:
                await websocket.send_text(frame)
            elif self.state is TransportState.CLOSING:
                assert self.close_code is not None
                await websocket.close(self.close_code)
                return
            else:
                self._wake.clear()
                await self._wake.wait()


async def voice_agent_socket(websocket: WebSocket) -> None:
    state = app_state(websocket.app)
    await websocket.accept()
    ready, first = await wait_until_ready(state, websocket)
    if not ready:
        if first is None or first["type"] != "websocket.disconnect":
            await refuse_for_now(websocket, state)
        return
    assert state.manager is not None  # set before ready
    transport = WebSocketTransport(Outbox.for_settings(state.settings))
    raw = presented_credential(websocket.headers, websocket.query_params)
    try:
        credential = await websocket_credential(raw, state.settings, state.tokens, state.manager)
    except SharedStateUnavailable as exc:  # a token or resume needs the cluster's store
        log.warning("socket refused for now: %s", exc)
        await refuse_for_now(websocket, state)
        return
    conn = Connection(state.manager, transport, credential, state.clock)
    writer = transport.start(websocket)
    timers: asyncio.Task[None] | None = None
    try:
        if conn.authenticate():
            timers = asyncio.create_task(conn.first_message_timeout())
            await _read(websocket, conn, writer, first)
        if transport.state is TransportState.OVERFLOWED:
            conn.on_disconnect()  # detach now, not after the close below has had its time
            await asyncio.wait_for(
                websocket.close(CLOSE_SLOW_CLIENT, SLOW_CLIENT_REASON), CLOSE_TIMEOUT_SECONDS
            )
        else:
            await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT_SECONDS)
    except (WebSocketDisconnect, RuntimeError, TimeoutError, OSError):
        pass
    finally:
        if transport.state is not TransportState.CLOSING:
            conn.on_disconnect()
        if writer.done() and not writer.cancelled():
            writer.exception()  # a send to a client already gone: retrieved, nothing to report
        for task in (writer, timers):
            if task is not None:
                task.cancel()


async def _read(
    websocket: WebSocket, conn: Connection, writer: asyncio.Task[None], first: Message | None
) -> None:
    """Read frames until the client leaves, the connection closes or the writer stops; ``first``
    is a frame already read while the server was starting (handled first).

    One plain ``await websocket.receive()`` per frame: a writer that stops cancels the wait
    (only the wait, never the handling of a frame). This loop runs for every 20 ms of every
    listening caller, so a task and an ``asyncio.wait`` per frame were a real share of the cost
    of an idle session.
    """
    reader = asyncio.current_task()
    waiting = False

    def writer_stopped(_: asyncio.Task[None]) -> None:
        if waiting and reader is not None:
            reader.cancel()

    writer.add_done_callback(writer_stopped)
    try:
        while not writer.done() and not conn.closed:
            if first is not None:
                message, first = first, None
            else:
                waiting = True
                try:
                    message = await websocket.receive()
                except asyncio.CancelledError:
                    if reader is not None and writer.done() and reader.uncancel() == 0:
                        return  # our own cancel: the writer is gone
                    raise
                finally:
                    waiting = False
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
            # A frame already buffered is received without yielding; let the writer and the
            # other sessions run between frames even when a client sends a burst.
            await asyncio.sleep(0)
    finally:
        writer.remove_done_callback(writer_stopped)


def _too_large(text: str) -> bool:
    """A frame's size is its UTF-8 length: 1 to 4 bytes per character (§2)."""
    if len(text) > MAX_TEXT_BYTES:
        return True
    if len(text) * 4 <= MAX_TEXT_BYTES:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES

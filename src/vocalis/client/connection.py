"""An asyncio client of the voice agent socket (contract §4-§14), over ``websockets``.

It creates the session, answers ``tool.call`` with Python callables, resumes the session on a new
connection after a network drop (§14), and hands every server event to the caller as a plain
dict, through an ``on_event`` callback or by iterating :meth:`VoiceAgentClient.events`.

Why ~420 lines: connecting, resuming and the event stream are one state machine of the client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from vocalis.client.errors import TERMINAL_CODES, ConnectionLost, SessionError
from vocalis.client.tools import ToolFunction, run_tool, tool_definitions

log = logging.getLogger(__name__)

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None] | None]

DEFAULT_URL: Final = "ws://127.0.0.1:8000/v1/ws"
SAMPLE_RATE: Final = 24_000  # audio/pcm, the default input and output format (§6.3)
BYTES_PER_MS: Final = SAMPLE_RATE * 2 // 1000
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
RESUME_DELAYS: Final = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # seconds; inside the 30 s grace window
# Close codes after which the session is over or the socket was taken over: never resume.
_FINAL_CLOSE_CODES: Final = frozenset({1000, 1001, 1008, 1013})


class _Finished:
    """End of the event stream; carries the exception that ended it, if any."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class VoiceAgentClient:
    """One voice agent session, kept across network drops.

    ``session`` is the ``session`` object of the first ``session.update`` (§6); tool definitions
    derived from ``tools`` are added to it, and ``tool.call`` events for those tools are answered
    with their return values. Create it inside a running event loop; use :func:`connect` or
    ``async with``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        session: Mapping[str, Any] | None = None,
        tools: Mapping[str, ToolFunction] | None = None,
        on_event: EventHandler | None = None,
        auto_resume: bool = True,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.credential = api_key or token
        self.tools: dict[str, ToolFunction] = dict(tools or {})
        self.session_config: dict[str, Any] = dict(session or {})
        if self.tools:
            self.session_config["tools"] = [
                *self.session_config.get("tools", []),
                *tool_definitions(self.tools),
            ]
        self.on_event = on_event
        self.auto_resume = auto_resume
        self.open_timeout = open_timeout

        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.config: dict[str, Any] | None = None
        self.expires_at: int | None = None
        self.ended: Event | None = None  # the session.ended event, once received
        self.resumes = 0  # successful resumes after a dropped connection

        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[Event | _Finished] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._pending: list[Event] = []  # control messages held while reconnecting
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._answered: set[str] = set()
        self._fatal: Event | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> Event:
        """Open the socket, create the session, and return its ``session.ready`` event.

        Raises :class:`SessionError` when the server refuses (bad credential, invalid value,
        capacity) and :class:`ConnectionLost` when the server cannot be reached.
        """
        ws = await self._open(self.credential)
        with contextlib.suppress(ConnectionClosed):  # a refusal may close the socket first
            await ws.send(_dumps({"type": "session.update", "session": self.session_config}))
        ready = await self._await_ready(ws)
        self._ws = ws
        self._reader = asyncio.create_task(self._read_loop())
        return ready

    async def __aenter__(self) -> VoiceAgentClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.end()

    async def end(self, timeout: float = 5.0) -> Event | None:
        """Send ``session.end`` and wait for ``session.ended`` (returned), then close."""
        if self._ws is not None and self.ended is None and not self._done.done():
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(_dumps({"type": "session.end"}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._done), timeout)
        await self.close()
        return self.ended

    async def close(self) -> None:
        """Close the socket without ending the session (it stays resumable for a while)."""
        self._closing = True
        for task in self._tool_tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._finish(None)

    async def wait_closed(self) -> Event | None:
        """Wait until the session is over; its ``session.ended`` event, or raise what ended it."""
        await asyncio.shield(self._done)
        error = self._done.result()
        if error is not None:
            raise error
        return self.ended

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._done.done()

    # ------------------------------------------------------------------ events
    async def events(self) -> AsyncIterator[Event]:
        """Every server event in order until the session ends; raises what ended it otherwise.

        Events are queued only when no ``on_event`` callback was given.
        """
        while True:
            item = await self._queue.get()
            if isinstance(item, _Finished):
                self._queue.put_nowait(item)  # later iterators end too
                if item.error is not None:
                    raise item.error
                return
            yield item

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    # ------------------------------------------------------------------ sending
    async def send(self, message: Mapping[str, Any], *, droppable: bool = False) -> None:
        """Send one client event. While reconnecting, ``droppable`` messages (audio) are dropped
        and others are held and sent after the resume."""
        event = dict(message)
        ws = self._ws
        if ws is None or self._done.done():
            if not droppable and not self._done.done():
                self._pending.append(event)
            return
        try:
            await ws.send(_dumps(event))
        except ConnectionClosed:
            if not droppable:
                self._pending.append(event)

    async def send_audio(self, pcm: bytes) -> None:
        """Send one chunk of input audio (PCM16 mono 24 kHz unless the input format changed)."""
        if pcm:
            audio = base64.b64encode(pcm).decode("ascii")
            await self.send({"type": "input.audio", "audio": audio}, droppable=True)

    async def stream_audio(
        self, audio: bytes | AsyncIterable[bytes], *, chunk_ms: int = 40
    ) -> None:
        """Send PCM16 24 kHz audio at real-time pace in ``chunk_ms`` chunks (20-100 ms).

        An async iterable (a microphone) is taken to be real-time already and sent as it comes.
        """
        if not isinstance(audio, bytes | bytearray):
            async for chunk in audio:
                await self.send_audio(chunk)
            return
        size = chunk_ms * BYTES_PER_MS
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(audio), size)):
            delay = start + index * chunk_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_audio(bytes(audio[offset : offset + size]))

    async def update(self, session: Mapping[str, Any]) -> None:
        """Change session settings (§7.1); the answer is ``session.updated`` or an error."""
        await self.send({"type": "session.update", "session": dict(session)})

    async def send_message(self, content: str, role: str = "user") -> None:
        """Add a text message to the conversation history (§7.6); starts no reply."""
        await self.send({"type": "conversation.message", "role": role, "content": content})

    async def create_reply(self, instructions: str | None = None) -> None:
        """Ask for a reply now (§7.5), with one-shot ``instructions``."""
        event: Event = {"type": "reply.create"}
        if instructions is not None:
            event["instructions"] = instructions
        await self.send(event)

    async def cancel_reply(self, reply_id: str | None = None) -> None:
        """Interrupt the reply in progress (§7.7)."""
        event: Event = {"type": "reply.cancel"}
        if reply_id is not None:
            event["reply_id"] = reply_id
        await self.send(event)

    async def send_tool_result(self, call_id: str, result: Any, *, is_error: bool = False) -> None:
        """Answer a ``tool.call`` (§7.4); only needed for calls of tools not given as ``tools``."""
        await self.send(
            {"type": "tool.result", "call_id": call_id, "result": result, "is_error": is_error}
        )

    # ------------------------------------------------------------------ internals
    async def _open(self, credential: str | None) -> ClientConnection:
        headers = {"Authorization": f"Bearer {credential}"} if credential else None
        try:
            return await ws_connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                max_size=MAX_FRAME_BYTES,
                compression=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {exc}") from exc

    async def _await_ready(self, ws: ClientConnection) -> Event:
        """Read until ``session.ready``; queue what came before; raise on ``session.error``."""
        try:
            async for raw in ws:
                event = _loads(raw)
                if event is None:
                    continue
                kind = event.get("type")
                if kind == "session.error":
                    with contextlib.suppress(ConnectionClosed):
                        await ws.close()
                    raise SessionError(event, credential_sent=self.credential is not None)
                if kind == "session.ready":
                    self._remember_ready(event)
                await self._deliver(event)
                if kind == "session.ready":
                    return event
        except ConnectionClosed:
            pass
        raise ConnectionLost(f"{self.url} closed the connection before session.ready")

    def _remember_ready(self, event: Event) -> None:
        self.session_id = event.get("session_id")
        self.resume_token = event.get("resume_token")
        self.config = event.get("config")
        self.expires_at = event.get("expires_at")

    async def _read_loop(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                ws = self._ws
                assert ws is not None
                with contextlib.suppress(ConnectionClosed):
                    async for raw in ws:
                        event = _loads(raw)
                        if event is not None:
                            await self._handle(event)
                if self._closing or self.ended is not None:
                    break
                if self._fatal is not None:
                    error = SessionError(self._fatal, credential_sent=self.credential is not None)
                    break
                code = ws.close_code
                if not self.auto_resume or code in _FINAL_CLOSE_CODES:
                    error = ConnectionLost(f"connection closed (code {code})")
                    break
                log.warning("connection lost (code %s); resuming the session", code)
                self._ws = None
                await self._resume()
        except (SessionError, ConnectionLost) as exc:
            error = exc
        finally:
            self._finish(error)

    async def _resume(self) -> None:
        """§14.2: new socket with the resume token, ``session.resume`` first."""
        last: BaseException | None = None
        for delay in RESUME_DELAYS:
            await asyncio.sleep(delay)
            try:
                ws = await self._open(self.resume_token)
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(_dumps({"type": "session.resume", "session_id": self.session_id}))
                await self._await_ready(ws)
            except SessionError:
                raise  # session_not_found / session_forbidden: the session is gone
            except (ConnectionLost, ConnectionClosed, OSError) as exc:
                last = exc
                continue
            self._ws = ws
            self.resumes += 1
            pending, self._pending = self._pending, []
            for event in pending:
                await self.send(event)
            return
        raise ConnectionLost(f"could not resume session {self.session_id}: {last}")

    async def _handle(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "session.error":
            if event.get("code") in TERMINAL_CODES:
                self._fatal = event
        elif kind == "session.ended":
            self.ended = event
        elif kind == "session.ready":
            self._remember_ready(event)
        elif kind == "tool.call":
            self._maybe_answer(event)
        await self._deliver(event)

    def _maybe_answer(self, event: Event) -> None:
        call_id = event.get("call_id")
        func = self.tools.get(str(event.get("name")))
        if func is None or not isinstance(call_id, str) or call_id in self._answered:
            return
        self._answered.add(call_id)
        arguments = event.get("arguments")
        task = asyncio.create_task(
            self._answer(func, call_id, arguments if isinstance(arguments, dict) else {})
        )
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _answer(self, func: ToolFunction, call_id: str, arguments: dict[str, Any]) -> None:
        result, is_error = await run_tool(func, arguments)
        await self.send_tool_result(call_id, result, is_error=is_error)

    async def _deliver(self, event: Event) -> None:
        if self.on_event is None:
            self._queue.put_nowait(event)
            return
        try:
            outcome = self.on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("on_event handler failed on %s", event.get("type"))

    def _finish(self, error: BaseException | None) -> None:
        if not self._done.done():
            self._done.set_result(error)
            self._queue.put_nowait(_Finished(error))


async def connect(
    url: str = DEFAULT_URL,
    *,
    api_key: str | None = None,
    token: str | None = None,
    session: Mapping[str, Any] | None = None,
    tools: Mapping[str, ToolFunction] | None = None,
    on_event: EventHandler | None = None,
    auto_resume: bool = True,
) -> VoiceAgentClient:
    """Create a session and return its connected client (see :class:`VoiceAgentClient`)."""
    client = VoiceAgentClient(
        url,
        api_key=api_key,
        token=token,
        session=session,
        tools=tools,
        on_event=on_event,
        auto_resume=auto_resume,
    )
    await client.connect()
    return client


def _dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _loads(raw: str | bytes) -> Event | None:
    try:
        event = json.loads(raw)
    except ValueError:
        log.warning("ignoring a frame that is not JSON")
        return None
    return event if isinstance(event, dict) else None

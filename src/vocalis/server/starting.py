"""A socket that arrives while the server is still loading its models.

Such a client used to be accepted and then left in silence until the models loaded, or forever
if they never did. It now waits a short while, or until its first message, and, if the server
is still not ready then, gets a ``session.error`` and a close it can act on.

Code choice: the contract (§16.1) has no "starting" code; ``at_capacity`` (close 1013, "try
again later") is the one that means *this server cannot take a session now, retry*, and it is
retryable for clients, which is exactly what a loading server wants them to do. Its exact message
is normative, so the reason ("models still loading") is not in the message: clients can see it
on ``GET /healthz`` (503 ``starting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.types import Message
from starlette.websockets import WebSocket

from vocalis import metrics
from vocalis.protocol import errors
from vocalis.protocol.server_events import session_error
from vocalis.server.state import AppState


async def wait_until_ready(state: AppState, websocket: WebSocket) -> tuple[bool, Message | None]:
    """Whether the server is ready to serve this socket, and the first client message if one
    was read while waiting (to be handled as usual when the server is ready).

    A still-loading server waits at most ``legacy_ready_timeout_seconds`` (3 s): that bound is
    the one after which the contract already lets the server speak first (the legacy
    ``session.ready``), so answering then stays within the rule "nothing before the first client
    message" as far as clients can tell. It answers earlier when the client speaks first: a
    client that sends ``session.update`` at once learns at once that it must retry.
    """
    if state.ready.is_set():
        return True, None
    ready = asyncio.create_task(state.ready.wait())
    first = asyncio.create_task(websocket.receive())
    try:
        await asyncio.wait(
            {ready, first},
            timeout=state.settings.legacy_ready_timeout_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        ready.cancel()
        if not first.done():
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
    message = first.result() if first.done() and not first.cancelled() else None
    return bool(state.ready.is_set()), message


async def refuse_for_now(websocket: WebSocket, state: AppState) -> None:
    """``session.error at_capacity`` (session ``null``), then close 1013: the server cannot take
    this socket now (models still loading, or the cluster's store unreachable); retry."""
    err = errors.at_capacity()
    metrics.session_error(err.code)
    event = session_error(err, None)
    event["timestamp"] = state.clock.wall()
    with contextlib.suppress(Exception):  # the client may already be gone
        await websocket.send_text(json.dumps(event, separators=(",", ":")))
        await websocket.close(err.close_code or errors.CLOSE_TRY_AGAIN)

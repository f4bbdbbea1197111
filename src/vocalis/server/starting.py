"""A socket that arrives while the server is still loading its models.

Such a client used to be accepted and then left in silence until the models loaded, or forever
if they never did. It now waits a short while and, if the server is still not ready, gets a
``session.error`` and a close it can act on.

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

from starlette.websockets import WebSocket

from vocalis import metrics
from vocalis.protocol import errors
from vocalis.protocol.server_events import session_error
from vocalis.server.state import AppState


async def wait_until_ready(state: AppState) -> bool:
    """Whether the server became ready within ``legacy_ready_timeout_seconds`` (3 s).

    That bound is the one after which the contract already lets the server speak first (the
    legacy ``session.ready``), so answering a still-loading server's socket then stays within
    the rule "nothing before the first client message" as far as clients can tell.
    """
    if state.ready.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.ready.wait(), state.settings.legacy_ready_timeout_seconds)
    return bool(state.ready.is_set())


async def refuse_while_starting(websocket: WebSocket, state: AppState) -> None:
    """``session.error at_capacity`` (session ``null``), then close 1013."""
    err = errors.at_capacity()
    metrics.session_error(err.code)
    event = session_error(err, None)
    event["timestamp"] = state.clock.wall()
    with contextlib.suppress(Exception):  # the client may already be gone
        await websocket.send_text(json.dumps(event, separators=(",", ":")))
        await websocket.close(err.close_code or errors.CLOSE_TRY_AGAIN)

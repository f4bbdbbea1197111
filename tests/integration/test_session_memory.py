"""Ended sessions are freed soon after they end, not whenever the cyclic collector runs.

A session is a web of reference cycles; with automatic collection off (as good as off for
minutes in a busy server, whose full collections are rare), only the manager's own collection
frees them. The soak suite measures what this is worth (bench/RESULTS.md, "Soak").
"""

from __future__ import annotations

import gc
import time

from tests.integration.conftest import WsServer
from vocalis.session.engine import Session


def _alive(ids: set[str]) -> int:
    """Sessions of this test still in memory (other tests' servers may hold their own)."""
    return sum(1 for o in gc.get_objects() if isinstance(o, Session) and o.id in ids)


def test_ended_sessions_are_freed_without_the_automatic_collector(ws_server: WsServer) -> None:
    gc.collect()
    gc.disable()
    try:
        ids: set[str] = set()
        for _ in range(3):
            with ws_server.connect() as ws:
                ids.add(ws.start()["session_id"])
                ws.send({"type": "reply.create"})
                ws.until("reply.done")
                ws.send({"type": "session.end"})
                ws.until("session.ended")
        deadline = time.monotonic() + 10
        alive = _alive(ids)
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = _alive(ids)
        assert alive == 0
    finally:
        gc.enable()


def test_a_session_still_held_when_it_ends_is_freed_once_let_go(ws_server: WsServer) -> None:
    # Its connection may still hold a session when the manager's first collection runs
    # (a busy server closes sockets late); a later collection frees it, with no other
    # session ending in between.
    gc.collect()
    gc.disable()
    try:
        with ws_server.connect() as ws:
            sid = ws.start()["session_id"]
            held = [o for o in gc.get_objects() if isinstance(o, Session) and o.id == sid]
            ws.send({"type": "session.end"})
            ws.until("session.ended")
        time.sleep(0.5)  # the first collection has run: the session was still held
        assert _alive({sid}) == 1
        held.clear()
        deadline = time.monotonic() + 10
        while _alive({sid}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive({sid}) == 0
    finally:
        gc.enable()

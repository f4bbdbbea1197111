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
from vocalis.session.manager import COLLECT_ATTEMPTS, COLLECT_EVERY_SECONDS

#: As long as the manager keeps collecting an ended session, and a little more.
PATIENCE_S = COLLECT_ATTEMPTS * COLLECT_EVERY_SECONDS + 2


def _alive(ids: set[str]) -> int:
    """Sessions of this test still in memory (other tests' servers may hold their own)."""
    return sum(1 for o in gc.get_objects() if isinstance(o, Session) and o.id in ids)


_PARTS = {"method", "cell"}  # bound methods and closures of the session's parts


def _holders(ids: set[str]) -> str:
    """Why sessions are still alive. Both tests here failed once each in a full run (a session
    alive after 10 s) and never alone, so a failure says whether one more collection frees them
    (the manager gave up too soon) and, if not, what outside the session's own parts holds them."""
    before = _alive(ids)
    gc.collect()
    lines = [f"{before} alive; one more collection left {_alive(ids)}"]
    for session in [o for o in gc.get_objects() if isinstance(o, Session) and o.id in ids]:
        for holder in gc.get_referrers(session):
            kind = type(holder)
            if kind.__module__.startswith("vocalis.session") or kind.__name__ in _PARTS:
                continue  # the session's own cycle
            above = sorted(
                {f"{type(h).__module__}.{type(h).__qualname__}" for h in gc.get_referrers(holder)}
            )
            lines.append(f"{session.id}: {kind.__qualname__} <- {', '.join(above)}")
    return "\n".join(lines)


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
        deadline = time.monotonic() + PATIENCE_S
        alive = _alive(ids)
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = _alive(ids)
        assert alive == 0, _holders(ids)
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
        deadline = time.monotonic() + PATIENCE_S
        while _alive({sid}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive({sid}) == 0, _holders({sid})
    finally:
        gc.enable()

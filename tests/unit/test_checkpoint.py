"""Session checkpoints (session/checkpoint.py): round trips, and a session continued by another
node's manager (session/cluster.py) through an in-memory shared store, on virtual time.

The store here is a fake that isolates the cluster logic; the Redis store itself is tested
against a real redis-server in tests/integration/test_redis_state.py.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import Harness
from vocalis.protocol.config import AudioFormat, HttpSpec, SessionConfig, ToolConfig
from vocalis.providers.fake import build_fake_providers
from vocalis.session import checkpoint as cp
from vocalis.session.clock import FakeClock
from vocalis.session.history import Entry, ToolCallRecord
from vocalis.session.hooks import SessionDeps
from vocalis.session.manager import SessionManager
from vocalis.session.reply import ReplyPlan
from vocalis.session.shared import ReleaseHandler
from vocalis.settings import Settings

TOOL = {"type": "function", "name": "t", "parameters": {"type": "object", "properties": {}}}


def sample() -> cp.Checkpoint:
    call = ToolCallRecord("call_1", "t", {"x": [1, "y"]}, "resp_1", "msg_2", 10.5)
    config = SessionConfig(
        id="sess_1",
        default_system_prompt="p",
        default_voice="ivy",
        greeting="Hi",
        output_format=AudioFormat("audio/pcmu"),
        tools=(ToolConfig("t", timeout_seconds=5),),
        agent_tools=(
            ToolConfig("h", http=HttpSpec("https://x.example.com", headers=(("K", "v"),))),
        ),
    )
    return cp.Checkpoint(
        session_id="sess_1",
        node_id="node-a",
        resume_token="rt",
        config=config,
        created_wall=1000.0,
        cap_seconds=600.0,
        expires_at=1600,
        history=[Entry("user", "hello", "msg_1"), Entry("assistant", "ok", "msg_2", [call])],
        queue=[cp.QueuedPlan(ReplyPlan("user_speech", 3.0, user_text="more"), 1003.0)],
        tool_rounds=1,
        written_wall=1004.0,
        turns=[{"turn_id": "resp_1", "agent_text": "ok"}],
    )


def test_round_trip_keeps_everything() -> None:
    original = sample()
    restored = cp.decode(cp.encode(original))
    assert restored == original
    assert restored.config.agent_tools[0].http == original.config.agent_tools[0].http
    assert [c.call_id for c in restored.pending_calls()] == ["call_1"]


def test_a_foreign_document_is_refused() -> None:
    with pytest.raises(ValueError):
        cp.decode(b'{"session_id": "x"}')
    data = cp.encode(sample()).replace(b'"version":1', b'"version":99')
    with pytest.raises(ValueError, match="format 99"):
        cp.decode(data)


class Store:
    """The shared store of several fake nodes (one dict), with release requests delivered
    directly to the owner's handler, as the Redis store's pub/sub does."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.owners: dict[str, str] = {}
        self.resume: dict[str, str] = {}
        self.tokens: dict[str, int] = {}
        self.handlers: dict[str, ReleaseHandler] = {}


class MemoryShared:
    def __init__(self, store: Store, node_id: str) -> None:
        self.store = store
        self.node_id = node_id

    async def mint_token(self, token: str, cap: int, ttl_seconds: float) -> None:
        self.store.tokens[token] = cap

    async def redeem_token(self, token: str) -> int | None:
        return self.store.tokens.pop(token, None)

    async def remember_resume_token(self, token: str, session_id: str) -> None:
        self.store.resume[token] = session_id

    async def session_for_resume_token(self, token: str) -> str | None:
        return self.store.resume.get(token)

    async def save_checkpoint(self, session_id: str, data: bytes, ttl_seconds: float) -> bool:
        if self.store.owners.setdefault(session_id, self.node_id) != self.node_id:
            return False
        self.store.data[session_id] = data
        return True

    async def load_checkpoint(self, session_id: str) -> bytes | None:
        return self.store.data.get(session_id)

    async def claim(self, session_id: str, ttl_seconds: float) -> str | None:
        previous = self.store.owners.get(session_id)
        self.store.owners[session_id] = self.node_id
        return previous if previous != self.node_id else None

    async def forget(self, session_id: str) -> None:
        if self.store.owners.get(session_id) == self.node_id:
            del self.store.owners[session_id]
            self.store.data.pop(session_id, None)

    async def request_release(self, owner: str, session_id: str, timeout: float) -> None:
        handler = self.store.handlers.get(owner)
        if handler is not None:
            await handler(session_id)

    def on_release(self, handler: ReleaseHandler) -> None:
        self.store.handlers[self.node_id] = handler

    async def aclose(self) -> None:
        pass


def node(store: Store, name: str, clock: FakeClock) -> SessionManager:
    settings = Settings(providers="fake", legacy_ready_timeout_seconds=0)
    deps = SessionDeps(settings, build_fake_providers(), clock, shared=MemoryShared(store, name))
    return SessionManager(deps)


async def checkpointed(h: Harness, store: Store, session_id: str, entries: int) -> None:
    """Let the checkpoint task write until the store holds ``entries`` history entries."""
    for _ in range(100):
        await h.wait(0.3)
        data = store.data.get(session_id)
        if data is not None and len(cp.decode(data).history) >= entries:
            return
    raise AssertionError("checkpoint never caught up")


async def test_resume_on_another_node_after_a_crash_keeps_history_and_pending_calls() -> None:
    store, clock = Store(), FakeClock()
    a = Harness(manager=node(store, "a", clock), clock=clock)
    ready = await a.start({"system_prompt": "Be brief.", "tools": [TOOL]})
    sid = ready["session_id"]
    await a.send({"type": "conversation.message", "role": "user", "content": "call t {}"})
    await a.send({"type": "reply.create"})
    await a.until("tool.call")
    call_id = a.transport.last("tool.call")["call_id"]
    await a.until("reply.done")
    await checkpointed(a, store, sid, 2)
    # node a dies: its tasks stop, nothing is handed over (no release handler answers)
    del store.handlers["a"]
    for session in a.manager.live_sessions():
        a.manager._moved.add(session.id)  # as if the process vanished: no end is recorded
        session.end("moved")
    await clock.settle()

    b = Harness(manager=node(store, "b", clock), clock=clock)
    await b.send({"type": "session.resume", "session_id": sid})
    again = b.transport.last("session.ready")
    assert b.transport.types() == ["session.ready"]
    for key in ("session_id", "expires_at", "resume_token"):
        assert again[key] == ready[key]
    assert again["config"]["system_prompt"] == "Be brief."
    assert b.session().history.entries[0].text == "call t {}"
    await b.send({"type": "tool.result", "call_id": call_id, "result": "done"})
    await b.until("reply.done")
    assert b.transport.last("transcript.agent")["text"] == "Tool result: done."
    b.session().end("client_end")
    await clock.settle()
    assert sid not in store.data  # an ended session is not resumable anywhere


async def test_resume_elsewhere_takes_over_a_live_session() -> None:
    store, clock = Store(), FakeClock()
    a = Harness(manager=node(store, "a", clock), clock=clock)
    ready = await a.start()
    sid = ready["session_id"]
    await a.send({"type": "conversation.message", "role": "user", "content": "remember me"})
    await a.send({"type": "reply.create"})
    await a.until("reply.done")
    # no wait for the checkpoint task: the release writes the owner's last state
    b = Harness(manager=node(store, "b", clock), clock=clock)
    await b.send({"type": "session.resume", "session_id": sid})
    assert a.transport.closed_with == 1001  # the old socket, no further events
    assert a.manager.get(sid) is None and store.owners[sid] == "b"
    texts = [e.text for e in b.session().history.entries]
    assert texts == ["remember me", "You said: remember me"]
    await b.send({"type": "conversation.message", "role": "user", "content": "again"})
    await b.send({"type": "reply.create"})
    await b.until("reply.done")
    b.session().end("client_end")
    await clock.settle()
    turns = b.session().timeline()["turns"]
    assert [t["agent_text"] for t in turns] == ["You said: remember me", "You said: again"]


async def test_resume_of_an_unknown_session_elsewhere_is_not_found() -> None:
    store, clock = Store(), FakeClock()
    b = Harness(manager=node(store, "b", clock), clock=clock)
    await b.send({"type": "session.resume", "session_id": "sess_nope"})
    assert b.transport.last("session.error")["code"] == "session_not_found"
    assert b.transport.closed_with == 1008


async def test_drain_hands_sessions_over_with_1012_after_the_reply() -> None:
    store, clock = Store(), FakeClock()
    a = Harness(manager=node(store, "a", clock), clock=clock)
    ready = await a.start({"greeting": "Hello there, this greeting takes a little while."})
    await a.until("reply.started")
    draining = asyncio.ensure_future(a.manager.drain(30))
    await a.until("reply.done")  # the reply in progress finishes
    while not draining.done():
        await a.wait(0.1)
    assert a.transport.closed_with == 1012
    assert a.manager.at_capacity()  # admits nothing more
    b = Harness(manager=node(store, "b", clock), clock=clock)
    await b.send({"type": "session.resume", "session_id": ready["session_id"]})
    assert b.transport.last("session.ready")["session_id"] == ready["session_id"]
    entries = b.session().history.entries
    assert [e.text for e in entries] == ["Hello there, this greeting takes a little while."]
    await b.close()

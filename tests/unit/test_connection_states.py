"""The explicit states of a connection and of a session: legal moves only, loudly."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import Harness
from vocalis.providers.fake import build_fake_providers
from vocalis.session.connection import ConnectionState
from vocalis.session.hooks import AgentSpec, SessionDeps
from vocalis.session.lifecycle import IllegalTransition, State, move
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings


def test_an_ended_session_cannot_come_back() -> None:
    assert move(State.ACTIVE, State.DETACHED) is State.DETACHED
    assert move(State.DETACHED, State.ACTIVE) is State.ACTIVE
    with pytest.raises(IllegalTransition, match="from ended to active"):
        move(State.ENDED, State.ACTIVE)


async def test_connection_moves_through_the_opening_sequence(harness: Harness) -> None:
    assert harness.conn.state is ConnectionState.AWAITING_FIRST
    await harness.start()
    assert harness.conn.state is ConnectionState.IN_SESSION
    await harness.send({"type": "session.end"})
    harness.conn.on_disconnect()
    assert harness.conn.state is ConnectionState.CLOSED
    with pytest.raises(IllegalTransition):
        harness.conn._move(ConnectionState.IN_SESSION)


async def test_a_socket_gone_while_its_session_opens_leaves_it_detached() -> None:
    """The stored agent is still being read when the client disconnects: the new session must
    not stay attached to the dead socket (it detaches and can be resumed)."""
    release = asyncio.Event()

    async def slow_lookup(agent_id: str) -> AgentSpec:
        await release.wait()
        return AgentSpec(agent_id, {"system_prompt": "Be brief."})

    settings = Settings(providers="fake", legacy_ready_timeout_seconds=0)
    h = Harness(settings=settings)
    h.manager = SessionManager(
        SessionDeps(settings, build_fake_providers(), h.clock, agent_lookup=slow_lookup)
    )
    h.conn.manager = h.manager
    opening = asyncio.create_task(h.send({"type": "session.update", "session": {"agent_id": "a"}}))
    await h.clock.settle()
    assert h.conn.state is ConnectionState.OPENING
    h.conn.on_disconnect()
    release.set()
    await opening
    session = h.session()
    assert session.state is State.DETACHED and not session.attached
    assert h.transport.types() == ["session.updated", "session.ready"]
    await h.close()

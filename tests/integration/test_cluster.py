"""Several nodes behind a real balancer (cluster_fixture.py): resume on another node, after a
crash, a temporary token raced across nodes, and a drain during a live conversation.

Which node runs a session is read from Redis (``vocalis:owner:<id>``), never guessed. No timing
is asserted: every wait is for an event or a state, with generous limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import websockets
from websockets.asyncio.client import ClientConnection

from tests.integration.cluster_fixture import API_KEY, SECRET, Cluster, start_cluster
from vocalis.session import checkpoint as cp
from vocalis.storage.crypto import fernet_key
from vocalis.storage.redis_state import RedisState

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
WAIT = 120.0  # seconds any single expected event may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    yield c
    c.stop()


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    cluster.ensure_running()
    return cluster


async def connect(c: Cluster, token: str | None = None) -> ClientConnection:
    if token is not None:
        return await websockets.connect(f"{c.url}?token={token}", max_size=None)
    return await websockets.connect(c.url, additional_headers=AUTH, max_size=None)


async def until(ws: ClientConnection, type_: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == type_:
                return event
            if event["type"] == "session.error":
                raise AssertionError(f"session.error while waiting for {type_}: {event}")

    return await asyncio.wait_for(read(), WAIT)


async def say(ws: ClientConnection, text: str) -> dict[str, Any]:
    """A user turn as text, then the reply to it, to its ``transcript.agent``."""
    await ws.send(json.dumps({"type": "conversation.message", "role": "user", "content": text}))
    await ws.send(json.dumps({"type": "reply.create"}))
    return await until(ws, "transcript.agent")


async def owner(c: Cluster, session_id: str) -> str | None:
    client = redis.Redis.from_url(c.redis)
    try:
        value = await client.get(f"vocalis:owner:{session_id}")
        return value.decode() if value is not None else None
    finally:
        await client.aclose()


async def checkpointed(c: Cluster, session_id: str, entries: int) -> cp.Checkpoint:
    """The session's checkpoint, once it holds ``entries`` history entries."""
    store = await RedisState.connect(
        c.redis, "test-reader", resume_token_ttl_seconds=None, fernet_key=fernet_key(SECRET)
    )
    try:
        for _ in range(int(WAIT * 10)):
            data = await store.load_checkpoint(session_id)
            if data is not None and len(cp.decode(data).history) >= entries:
                return cp.decode(data)
            await asyncio.sleep(0.1)
        raise AssertionError("the checkpoint never caught up")
    finally:
        await store.aclose()


async def resume(c: Cluster, session_id: str, resume_token: str) -> ClientConnection:
    """Resume through the balancer, as a client does: a node that is draining answers 1013,
    then the client tries again and the balancer sends it to another node."""
    for _ in range(20):
        ws = await connect(c, resume_token)
        await ws.send(json.dumps({"type": "session.resume", "session_id": session_id}))
        event = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if event["type"] == "session.ready":
            assert event["session_id"] == session_id
            return ws
        assert event["code"] == "at_capacity", event
        await ws.close()
    raise AssertionError("no node took the resume")


async def timeline_turns(c: Cluster, session_id: str) -> list[dict[str, Any]]:
    """The timeline artifact, fetched by its signed URL through the balancer (any node); the
    recording too, which PostgreSQL keeps for every node (not one node's disk)."""
    async with httpx.AsyncClient(base_url=c.http, timeout=30) as http:
        for _ in range(int(WAIT * 5)):
            record = (await http.get(f"/v1/sessions/{session_id}", headers=AUTH)).json()
            urls = {a["type"]: a["url"] for a in record.get("artifacts", [])}
            if "timeline" in urls:
                for _ in range(4):  # round robin: the URLs are checked by more than one node
                    audio = await http.get(urls["audio"])
                    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
                    resp = await http.get(urls["timeline"])
                    assert resp.status_code == 200
                turns: list[dict[str, Any]] = resp.json()["turns"]
                return turns
            await asyncio.sleep(0.2)
    raise AssertionError("no timeline artifact")


async def finish(c: Cluster, ws: ClientConnection, session_id: str, said: list[str]) -> None:
    """The history on the node that ran the last turn holds every user turn, and the timeline,
    read from the shared database through any node, has every reply of every node."""
    await until(ws, "reply.done")
    checkpoint = await checkpointed(c, session_id, 2 * len(said))
    assert [e.text for e in checkpoint.history if e.role == "user"] == said
    await ws.send(json.dumps({"type": "session.end"}))
    await until(ws, "session.ended")
    turns = await timeline_turns(c, session_id)
    assert [t["status"] for t in turns] == ["completed"] * len(said)


async def start_session(c: Cluster) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(c)
    await ws.send(json.dumps({"type": "session.update", "session": {}}))
    return ws, await until(ws, "session.ready")


async def test_dropped_socket_resumes_on_another_node_with_its_history(running: Cluster) -> None:
    ws, ready = await start_session(running)
    sid = ready["session_id"]
    await say(ws, "My name is Ada.")
    first = await owner(running, sid)
    ws.transport.abort()  # a network drop: no close frame
    again = await resume(running, sid, ready["resume_token"])
    if await owner(running, sid) == first:  # the balancer's turn came back to the same node
        await again.close()
        again = await resume(running, sid, ready["resume_token"])
    assert await owner(running, sid) not in (first, None)
    await say(again, "What is my name?")
    await finish(running, again, sid, ["My name is Ada.", "What is my name?"])


async def test_a_node_killed_mid_session_loses_nothing_before_the_last_turn(
    running: Cluster,
) -> None:
    ws, ready = await start_session(running)
    sid = ready["session_id"]
    await say(ws, "Remember the number seven.")
    await checkpointed(running, sid, 2)
    dead = await owner(running, sid)
    assert dead is not None
    running.kill(dead)
    again = await resume(running, sid, ready["resume_token"])
    assert await owner(running, sid) != dead
    await say(again, "Which number?")
    await finish(running, again, sid, ["Remember the number seven.", "Which number?"])


async def test_a_temporary_token_raced_across_nodes_is_redeemed_once(running: Cluster) -> None:
    async with httpx.AsyncClient(base_url=running.http, timeout=30) as http:
        token = (await http.post("/v1/tokens", json={}, headers=AUTH)).json()["token"]
    sockets = [await connect(running, token) for _ in range(4)]  # round robin: both nodes

    async def first_answer(ws: ClientConnection) -> str:
        # a refused socket is closed right after the upgrade (§3.4): its error is still to read
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps({"type": "session.update", "session": {}}))
        event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        return event["type"] if event["type"] != "session.error" else event["code"]

    answers = await asyncio.gather(*(first_answer(ws) for ws in sockets))
    assert sorted(answers) == ["session.updated", "unauthorized", "unauthorized", "unauthorized"]
    for ws in sockets:
        await ws.close()


async def test_sigterm_during_a_reply_finishes_it_then_the_session_moves(
    running: Cluster,
) -> None:
    ws, ready = await start_session(running)
    sid = ready["session_id"]
    await say(ws, "Hello.")
    await ws.send(json.dumps({"type": "conversation.message", "role": "user", "content": "Hi!"}))
    await ws.send(json.dumps({"type": "reply.create"}))
    await until(ws, "reply.started")
    node = await owner(running, sid)
    assert node is not None
    running.terminate(node)
    done = await until(ws, "reply.done")  # the reply in progress is heard to its end
    assert done["status"] == "completed"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    again = await resume(running, sid, ready["resume_token"])
    assert await owner(running, sid) != node
    await say(again, "Still there?")
    await finish(running, again, sid, ["Hello.", "Hi!", "Still there?"])

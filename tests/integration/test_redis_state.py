"""The Redis store of a cluster (storage/redis_state.py) against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.integration.redis_fixture import redis_url
from vocalis.storage.crypto import fernet_key
from vocalis.storage.redis_state import RedisState


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[RedisState, RedisState]]:
    url = redis_url()
    key = fernet_key("shared secret")
    a = await RedisState.connect(
        url, f"a-{uuid.uuid4().hex[:6]}", resume_token_ttl_seconds=60, fernet_key=key
    )
    b = await RedisState.connect(
        url, f"b-{uuid.uuid4().hex[:6]}", resume_token_ttl_seconds=None, fernet_key=key
    )
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_a_token_raced_by_many_connections_is_redeemed_once(
    nodes: tuple[RedisState, RedisState],
) -> None:
    a, b = nodes
    token = uuid.uuid4().hex
    await a.mint_token(token, 600, 60)
    results = await asyncio.gather(*(n.redeem_token(token) for n in (a, b) * 10))
    assert sorted(results, key=lambda r: r is None) == [600] + [None] * 19


async def test_an_expired_token_is_gone(nodes: tuple[RedisState, RedisState]) -> None:
    a, b = nodes
    await a.mint_token("short", 600, 0.001)
    for _ in range(100):
        if await b.redeem_token("short") is None:
            return
        await asyncio.sleep(0.01)  # pragma: no cover - redis expires within milliseconds
    raise AssertionError("token did not expire")


async def test_resume_tokens_are_known_on_every_node(nodes: tuple[RedisState, RedisState]) -> None:
    a, b = nodes
    await a.remember_resume_token("rt-1", "sess_1")
    assert await b.session_for_resume_token("rt-1") == "sess_1"
    assert await b.session_for_resume_token("rt-unknown") is None


async def test_checkpoint_writes_are_fenced_by_ownership(
    nodes: tuple[RedisState, RedisState],
) -> None:
    a, b = nodes
    sid = f"sess_{uuid.uuid4().hex}"
    assert await a.save_checkpoint(sid, b"one", 30)
    assert await b.load_checkpoint(sid) == b"one"
    assert await a.owner(sid) == a.node_id
    assert await b.claim(sid, 30) == a.node_id
    assert not await a.save_checkpoint(sid, b"stale", 30)  # a lost it: cannot overwrite
    assert await b.save_checkpoint(sid, b"two", 30)
    assert await a.load_checkpoint(sid) == b"two"
    await a.forget(sid)  # not a's to forget
    assert await b.load_checkpoint(sid) == b"two"
    await b.forget(sid)
    assert await b.load_checkpoint(sid) is None


async def test_checkpoints_are_sealed_with_the_shared_secret(
    nodes: tuple[RedisState, RedisState],
) -> None:
    a, _ = nodes
    sid = f"sess_{uuid.uuid4().hex}"
    await a.save_checkpoint(sid, b"secret header value", 30)
    stranger = await RedisState.connect(
        redis_url(), "c", resume_token_ttl_seconds=None, fernet_key=fernet_key("other secret")
    )
    try:
        raw = await stranger._redis.get(f"vocalis:ckpt:{sid}")
        assert raw is not None and b"secret header value" not in raw
        assert await stranger.load_checkpoint(sid) is None  # another key cannot read it
    finally:
        await stranger.aclose()


async def test_release_requests_reach_the_owner_and_wait_for_it(
    nodes: tuple[RedisState, RedisState],
) -> None:
    a, b = nodes
    released: list[str] = []

    async def release(session_id: str) -> None:
        await a.save_checkpoint(session_id, b"last word", 30)
        released.append(session_id)

    a.on_release(release)
    sid = f"sess_{uuid.uuid4().hex}"
    await a.save_checkpoint(sid, b"early", 30)
    await b.request_release(a.node_id, sid, timeout=10)
    assert released == [sid]
    assert await b.claim(sid, 30) == a.node_id
    assert await b.load_checkpoint(sid) == b"last word"


async def test_a_release_request_to_a_dead_node_does_not_wait(
    nodes: tuple[RedisState, RedisState],
) -> None:
    _, b = nodes
    # nobody listens on this node's channel: PUBLISH reaches no one, so no wait at all
    await asyncio.wait_for(b.request_release("gone-node", "sess_x", timeout=600), timeout=30)

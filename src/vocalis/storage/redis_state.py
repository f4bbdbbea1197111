"""The state nodes share, on Redis (``VOCALIS_REDIS_URL``), with redis-py's asyncio client.

Keys (prefix ``vocalis:``):

* ``token:<t>`` → the session cap of an unredeemed temporary token, expiring with it. Redemption
  is ``GETDEL``: one atomic command, so of two nodes racing on a token exactly one gets it (§3.3).
* ``resume:<t>`` → the session id of a resume token, kept as long as session records are
  (``session_retention_days``), so a late resume on any node fails with ``session_not_found``
  rather than ``unauthorized`` (§3.4).
* ``ckpt:<id>`` → the session's checkpoint (``session/checkpoint.py``), Fernet-encrypted when a
  ``secret_key`` is set (a configuration may hold a stored agent's HTTP header values and LLM key);
  ``owner:<id>`` → the node running it. Both expire a grace window after the owner's last write,
  so a node killed with ``-9`` leaves a checkpoint that lives exactly as long as a resume may come.
  Writes are fenced by a Lua script: only the owner (or anyone, when there is none) may write, so
  a node that lost a session cannot overwrite its new owner's state.
* channel ``node:<id>`` → each node's inbox: ``release`` requests for a session resumed
  elsewhere, and the ``released`` answers. ``PUBLISH`` returns how many subscribers got the
  message, so a request to a dead node is known unanswerable at once and costs no wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as redis
from cryptography.fernet import Fernet, InvalidToken

from vocalis.session.shared import ReleaseHandler, SharedStateUnavailable

log = logging.getLogger(__name__)

PREFIX = "vocalis:"

# KEYS: checkpoint, owner. ARGV: node, data, ttl ms. Writes only for the owner or when unowned.
_SAVE = """
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: checkpoint, owner. ARGV: node. Deletes only what this node owns.
_FORGET = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Redis unreachable (down, restarting, cut off): one error type the nodes handle."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise SharedStateUnavailable(f"Redis is unreachable: {exc}") from exc


RECONNECT_SECONDS = 1.0  # how often a node cut off from Redis tries its channel again


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisState:
    """:class:`~vocalis.session.shared.SharedState` on one Redis server (or a Sentinel/cluster
    endpoint that redis-py reaches through its URL)."""

    def __init__(
        self,
        client: redis.Redis,
        node_id: str,
        *,
        resume_token_ttl_seconds: float | None,
        fernet_key: bytes | None = None,
    ) -> None:
        self.node_id = node_id
        self._redis = client
        self._resume_ttl = resume_token_ttl_seconds
        self._fernet = Fernet(fernet_key) if fernet_key is not None else None
        self._save = client.register_script(_SAVE)
        self._forget = client.register_script(_FORGET)
        self._handler: ReleaseHandler | None = None
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def connect(
        cls,
        url: str,
        node_id: str,
        *,
        resume_token_ttl_seconds: float | None,
        fernet_key: bytes | None = None,
    ) -> RedisState:
        """Connect, check the server answers, and start listening on this node's inbox."""
        # bounded waits: a node cut off from Redis must notice, not hang its sessions
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        await client.ping()
        state = cls(
            client,
            node_id,
            resume_token_ttl_seconds=resume_token_ttl_seconds,
            fernet_key=fernet_key,
        )
        await state._pubsub.subscribe(state._inbox(node_id))
        state._listener = asyncio.create_task(state._listen())
        return state

    # ---------------------------------------------------------------- temporary tokens
    async def mint_token(
        self, token: str, max_session_duration_seconds: int, ttl_seconds: float
    ) -> None:
        with _unavailable():
            await self._redis.set(
                f"{PREFIX}token:{token}", max_session_duration_seconds, px=_ms(ttl_seconds)
            )

    async def redeem_token(self, token: str) -> int | None:
        with _unavailable():
            value = await self._redis.getdel(f"{PREFIX}token:{token}")
            return int(value) if value is not None else None

    # ---------------------------------------------------------------- resume tokens
    async def remember_resume_token(self, token: str, session_id: str) -> None:
        with _unavailable():
            ttl = self._resume_ttl
            await self._redis.set(
                f"{PREFIX}resume:{token}", session_id, px=_ms(ttl) if ttl else None
            )

    async def session_for_resume_token(self, token: str) -> str | None:
        with _unavailable():
            value = await self._redis.get(f"{PREFIX}resume:{token}")
            return value.decode() if value is not None else None

    # ---------------------------------------------------------------- checkpoints and owners
    async def save_checkpoint(self, session_id: str, data: bytes, ttl_seconds: float) -> bool:
        with _unavailable():
            sealed = self._fernet.encrypt(data) if self._fernet is not None else data
            keys = [f"{PREFIX}ckpt:{session_id}", f"{PREFIX}owner:{session_id}"]
            written = await self._save(keys=keys, args=[self.node_id, sealed, _ms(ttl_seconds)])
            return bool(written)

    async def load_checkpoint(self, session_id: str) -> bytes | None:
        with _unavailable():
            data: bytes | None = await self._redis.get(f"{PREFIX}ckpt:{session_id}")
            if data is None or self._fernet is None:
                return data
            try:
                return self._fernet.decrypt(data)
            except InvalidToken:
                log.error("checkpoint of %s cannot be decrypted: secret_key differs", session_id)
                return None

    async def owner(self, session_id: str) -> str | None:
        with _unavailable():
            value = await self._redis.get(f"{PREFIX}owner:{session_id}")
            return value.decode() if value is not None else None

    async def claim(self, session_id: str, ttl_seconds: float) -> str | None:
        with _unavailable():
            previous = await self._redis.set(
                f"{PREFIX}owner:{session_id}", self.node_id, px=_ms(ttl_seconds), get=True
            )
            name = previous.decode() if isinstance(previous, bytes) else None
            return None if name == self.node_id else name

    async def forget(self, session_id: str) -> None:
        with _unavailable():
            keys = [f"{PREFIX}ckpt:{session_id}", f"{PREFIX}owner:{session_id}"]
            await self._forget(keys=keys, args=[self.node_id])

    # ---------------------------------------------------------------- hand-off between nodes
    def on_release(self, handler: ReleaseHandler) -> None:
        self._handler = handler

    async def request_release(self, owner: str, session_id: str, timeout: float) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting[session_id] = done
        try:
            message = {"op": "release", "session_id": session_id, "reply_to": self.node_id}
            with _unavailable():
                receivers = await self._redis.publish(self._inbox(owner), json.dumps(message))
            if receivers:
                await asyncio.wait_for(done, timeout)
        except TimeoutError:
            log.warning("node %s did not release session %s in time", owner, session_id)
        finally:
            self._waiting.pop(session_id, None)

    @staticmethod
    def _inbox(node_id: str) -> str:
        return f"{PREFIX}node:{node_id}"

    async def _listen(self) -> None:
        """Serve this node's channel; across a Redis restart, subscribe again and carry on."""
        down = False
        while True:
            try:
                if down:
                    await self._pubsub.subscribe(self._inbox(self.node_id))
                    log.info("shared state (Redis) is reachable again")
                    down = False
                async for message in self._pubsub.listen():
                    self._on_message(message)
            except redis.TimeoutError:
                continue  # an idle read timed out: nothing is wrong
            except (redis.ConnectionError, OSError):
                if not down:
                    log.warning(
                        "shared state (Redis) is unreachable: sessions on this node go on; "
                        "tokens, resumes from other nodes and checkpoints wait until it is back"
                    )
                    down = True
                await asyncio.sleep(RECONNECT_SECONDS)

    def _on_message(self, message: Any) -> None:
        try:
            body: dict[str, Any] = json.loads(message["data"])
            session_id = str(body["session_id"])
            if body.get("op") == "release":
                task = asyncio.create_task(self._release(session_id, str(body["reply_to"])))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif body.get("op") == "released":
                waiter = self._waiting.get(session_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed message on this node's channel")

    async def _release(self, session_id: str, reply_to: str) -> None:
        try:
            if self._handler is not None:
                await self._handler(session_id)
        except Exception:
            log.exception("could not release session %s", session_id)
        answer = {"op": "released", "session_id": session_id}
        try:
            await self._redis.publish(self._inbox(reply_to), json.dumps(answer))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            log.warning("could not tell node %s that session %s was released", reply_to, session_id)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py lacks the hint
        await self._redis.aclose()

"""State that several nodes share, as one narrow interface (implemented on Redis in
``storage/redis_state.py``; absent when a server runs alone, which keeps today's in-process
behaviour exactly).

Why these operations and no more: a node must (1) redeem a temporary token once across all
nodes, (2) recognise any session's resume token, (3) keep a checkpoint of each session it owns
that outlives the node for the grace window, and (4) ask the owner of a session to let go of it
when the session is resumed elsewhere. Ownership is fenced: a node that is no longer the owner
cannot overwrite the new owner's checkpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class SharedStateUnavailable(Exception):
    """The shared store cannot be reached now (Redis down, restarting, or cut off).

    Sessions on this node go on without it: only what needs the other nodes (redeeming a token,
    resuming a session that lives elsewhere, writing checkpoints) waits until it is back, and a
    client that needs it now is told to try again (``at_capacity``, close 1013).
    """


ReleaseHandler = Callable[[str], Awaitable[None]]
"""Called on the owning node with a session id another node is resuming: hand it off."""


class SharedState(Protocol):
    node_id: str

    # ---------------------------------------------------------------- temporary tokens (§3.3)
    async def mint_token(
        self, token: str, max_session_duration_seconds: int, ttl_seconds: float
    ) -> None: ...

    async def redeem_token(self, token: str) -> int | None:
        """The token's session cap, consumed atomically; ``None`` if unknown, expired or gone."""

    # ---------------------------------------------------------------- resume tokens (§3.4)
    async def remember_resume_token(self, token: str, session_id: str) -> None: ...

    async def session_for_resume_token(self, token: str) -> str | None: ...

    # ---------------------------------------------------------------- checkpoints and owners
    async def save_checkpoint(self, session_id: str, data: bytes, ttl_seconds: float) -> bool:
        """Store ``data`` if this node still owns the session; ``False`` if another owns it."""

    async def load_checkpoint(self, session_id: str) -> bytes | None: ...

    async def claim(self, session_id: str, ttl_seconds: float) -> str | None:
        """Make this node the owner; returns the previous owner (``None``: none, or us)."""

    async def forget(self, session_id: str) -> None:
        """The session ended here: drop its checkpoint and ownership (not its resume token)."""

    async def request_release(self, owner: str, session_id: str, timeout: float) -> None:
        """Ask ``owner`` to let go of ``session_id`` and wait until it has (it wrote its last
        checkpoint), or until ``timeout`` when nobody answers (a dead node answers nothing)."""

    def on_release(self, handler: ReleaseHandler) -> None:
        """Serve release requests from other nodes with ``handler``."""

    async def aclose(self) -> None: ...

"""Temporary tokens (§3.3): minted by REST, redeemed once by a WebSocket.

Kept in memory (the contract allows it: a restart invalidates unredeemed tokens). Redemption is a
single synchronous dict operation on the event loop, so of two sockets racing on one token exactly
one wins. In a cluster (``shared`` set, Redis) tokens live in the shared store instead, so a token
minted by one node is redeemed on any, once: the store's redemption is one atomic command.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocalis.ids import opaque_token
from vocalis.session.clock import Clock
from vocalis.session.shared import SharedState


@dataclass(frozen=True)
class _Grant:
    expires_at: float  # wall seconds: unredeemed after this, the token is invalid
    max_session_duration_seconds: int


class TokenStore:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._grants: dict[str, _Grant] = {}
        self.shared: SharedState | None = None  # set once the cluster's store is connected

    async def issue(
        self, expires_in_seconds: int, max_session_duration_seconds: int
    ) -> tuple[str, float]:
        """:meth:`mint`, in the shared store when there is one."""
        if self.shared is None:
            return self.mint(expires_in_seconds, max_session_duration_seconds)
        token = opaque_token()
        await self.shared.mint_token(token, max_session_duration_seconds, expires_in_seconds)
        return token, self._clock.wall() + expires_in_seconds

    async def take(self, token: str) -> int | None:
        """:meth:`redeem`, in the shared store when there is one."""
        if self.shared is None:
            return self.redeem(token)
        return await self.shared.redeem_token(token)

    def mint(self, expires_in_seconds: int, max_session_duration_seconds: int) -> tuple[str, float]:
        """A new token and the wall time by which it must be redeemed."""
        self._purge()
        token = opaque_token()
        expires_at = self._clock.wall() + expires_in_seconds
        self._grants[token] = _Grant(expires_at, max_session_duration_seconds)
        return token, expires_at

    def redeem(self, token: str) -> int | None:
        """Consume ``token``; its session cap, or ``None`` if unknown, expired or redeemed."""
        grant = self._grants.pop(token, None)
        if grant is None or grant.expires_at < self._clock.wall():
            return None
        return grant.max_session_duration_seconds

    def _purge(self) -> None:
        now = self._clock.wall()
        for token in [t for t, g in self._grants.items() if g.expires_at < now]:
            del self._grants[token]

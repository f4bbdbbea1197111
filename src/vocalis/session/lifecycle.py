"""A session's states (§4.1), the moves between them, and the connection it talks through."""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from vocalis.protocol.server_events import ServerEvent


class Transport(Protocol):
    """The connection a session is attached to (the server edge implements it)."""

    def send(self, event: ServerEvent) -> None: ...

    def close(self, code: int) -> None: ...


class State(Enum):
    ACTIVE = "active"
    DETACHED = "disconnected"
    ENDED = "ended"


class IllegalTransition(RuntimeError):
    """A bug: the engine tried a move the lifecycle does not have."""


_MOVES: dict[State, frozenset[State]] = {
    # ACTIVE -> ACTIVE: a resume takes the session over from another connection (§14.2)
    State.ACTIVE: frozenset({State.ACTIVE, State.DETACHED, State.ENDED}),
    State.DETACHED: frozenset({State.ACTIVE, State.ENDED}),
    State.ENDED: frozenset(),
}


def move(current: State, new: State) -> State:
    """The new state, or :class:`IllegalTransition` when ``current`` cannot become ``new``."""
    if new not in _MOVES[current]:
        raise IllegalTransition(f"session cannot go from {current.value} to {new.value}")
    return new

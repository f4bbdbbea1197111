"""A session's states (§4.1) and the connection it talks through."""

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

"""What the engine needs from the layers around it, as narrow interfaces.

The engine never imports storage or HTTP code: the server wires implementations of these in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from vocalis.protocol.config import CustomLLM

if TYPE_CHECKING:
    from vocalis.providers.base import LLM, ProviderSet
    from vocalis.session.clock import Clock
    from vocalis.session.shared import SharedState
    from vocalis.settings import Settings


@dataclass(frozen=True)
class Credential:
    """Who opened a WebSocket (§3.2), as established by the server edge before any message."""

    kind: Literal["api_key", "temporary", "resume", "open"]
    max_session_duration_seconds: int | None = None  # temporary tokens only
    session_id: str | None = None  # resume tokens only
    token: str | None = None  # the resume token itself, to check session_forbidden

    @property
    def can_create(self) -> bool:
        return self.kind != "resume"


@dataclass(frozen=True)
class AgentSpec:
    """A stored agent as a session sees it at start (§6.6).

    ``session`` is a ``session`` object of §6 (``voice.voice_id`` already mapped to
    ``output.voice``; tools may carry ``http`` with header values); ``llm`` keeps the API key.
    """

    agent_id: str
    session: dict[str, Any]
    llm: tuple[CustomLLM, ...] = ()


class AgentLookup(Protocol):
    async def __call__(self, agent_id: str) -> AgentSpec | None: ...


@dataclass
class SessionRecord:
    """The live facts of a session for §17.4 records; updated by the engine."""

    session_id: str
    agent_id: str | None
    status: Literal["active", "disconnected", "ended"]
    created_at: float  # wall seconds
    config: dict[str, Any]  # resolved, secrets already removed
    ended_at: float | None = None
    public_close_reason: str | None = None
    timeline: dict[str, Any] | None = None
    recording: bytes | None = None  # stereo PCM16 WAV (user left, agent right), when enabled
    extra: dict[str, Any] = field(default_factory=dict)


class SessionRecorder(Protocol):
    """Persists session records and artifacts; called from the engine, must not block."""

    async def session_changed(self, record: SessionRecord) -> None: ...

    async def session_ended(self, record: SessionRecord) -> None: ...


class HttpToolRunner(Protocol):
    """Executes a stored agent's HTTP tool (§13.7); returns (result text, is_error)."""

    async def __call__(
        self,
        url: str,
        method: str,
        headers: tuple[tuple[str, str], ...],
        arguments: dict[str, Any],
        timeout_seconds: float,
    ) -> tuple[str, bool]: ...


@dataclass(frozen=True)
class SessionDeps:
    """Everything the server wires into its sessions, in one place: the settings, the models,
    the clock, and the storage and HTTP hooks (absent in tests and in the fake stack)."""

    settings: Settings
    providers: ProviderSet
    clock: Clock
    recorder: SessionRecorder | None = None
    http_runner: HttpToolRunner | None = None
    agent_lookup: AgentLookup | None = None
    llm_factory: Callable[[CustomLLM], LLM] | None = None
    # State shared with other nodes (Redis); None = this server runs alone, all in-process.
    shared: SharedState | None = None

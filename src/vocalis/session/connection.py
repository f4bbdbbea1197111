"""One WebSocket connection's protocol logic, without the socket (§3.4, §4, §7.1, App. A).

The server edge feeds it text frames and frame-level problems; it answers through a
:class:`Transport`. Before a session exists it handles the CONNECTED state (first-message rules,
first ``session.update`` validation, resume, the first-message timeout and the legacy fallback);
afterwards it forwards events to the attached session.
"""

from __future__ import annotations

import logging
from enum import Enum

from pydantic import ValidationError

from vocalis import metrics
from vocalis.protocol import client_events as ce
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.protocol.config import (
    SessionConfig,
    SessionIn,
    ValidationContext,
    parse_session,
    validate_update,
)
from vocalis.protocol.errors import ProtocolError
from vocalis.session.agents import stored_agent_config
from vocalis.session.clock import Clock
from vocalis.session.engine import Session
from vocalis.session.hooks import Credential
from vocalis.session.lifecycle import IllegalTransition, Transport
from vocalis.session.manager import SessionManager

log = logging.getLogger(__name__)


class ConnectionState(Enum):
    """Where one socket is in the contract's opening sequence (§4.1)."""

    AWAITING_FIRST = "awaiting_first"  # no session.update / session.resume yet
    OPENING = "opening"  # the first message is being handled (validation, storage, resume)
    IN_SESSION = "in_session"  # a session is attached through this socket
    CLOSED = "closed"


_MOVES: dict[ConnectionState, frozenset[ConnectionState]] = {
    # OPENING -> AWAITING_FIRST: an unparseable first update leaves room for another (§7.1)
    ConnectionState.AWAITING_FIRST: frozenset(
        {ConnectionState.OPENING, ConnectionState.IN_SESSION, ConnectionState.CLOSED}
    ),
    ConnectionState.OPENING: frozenset(
        {ConnectionState.AWAITING_FIRST, ConnectionState.IN_SESSION, ConnectionState.CLOSED}
    ),
    ConnectionState.IN_SESSION: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}


class Connection:
    def __init__(
        self,
        manager: SessionManager,
        transport: Transport,
        credential: Credential | None,
        clock: Clock,
    ) -> None:
        self.manager = manager
        self.transport = transport
        self.credential = credential
        self.clock = clock
        self.session: Session | None = None
        self.state = ConnectionState.AWAITING_FIRST

    @property
    def closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    def _move(self, new: ConnectionState) -> None:
        if new not in _MOVES[self.state]:
            raise IllegalTransition(f"connection cannot go from {self.state.value} to {new.value}")
        self.state = new

    def _entered(self, session: Session) -> None:
        """A session now talks through this socket, unless the socket went away meanwhile:
        then the session detaches as after any unclean disconnect (§14.1)."""
        self.session = session
        if self.closed:
            if session.is_attached_to(self.transport):
                session.detach()
            return
        self._move(ConnectionState.IN_SESSION)

    # ------------------------------------------------------------------ output
    def _send_error(self, err: ProtocolError) -> None:
        metrics.session_error(err.code)
        event = ev.session_error(err, self.session.id if self.session else None)
        event["timestamp"] = self.clock.wall()
        self.transport.send(event)
        if err.close_code is not None:
            self.close(err.close_code)

    def close(self, code: int) -> None:
        if not self.closed:
            self._move(ConnectionState.CLOSED)
            self.transport.close(code)

    # ------------------------------------------------------------------ edge callbacks
    def authenticate(self) -> bool:
        """Right after the upgrade: an invalid credential gets ``unauthorized`` + 1008."""
        if self.credential is None:
            self._send_error(errors.unauthorized())
            return False
        return True

    async def on_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            event = ce.parse_client_message(text)
        except ProtocolError as err:
            self._report(err)
            return
        try:
            if self.session is not None:
                if self.session.state.value == "ended":
                    return
                if isinstance(event, ce.SessionResume):
                    self._report(errors.resume_not_first())
                    return
                await self.session.handle(event)
                return
            await self._before_session(event)
        except ProtocolError as err:
            self._report(err)
        except Exception:
            log.exception("internal error handling %s", event.type)
            self._report(errors.internal_error())

    def on_binary(self) -> None:
        self._report(errors.binary_frame())

    def on_too_large(self) -> None:
        self._report(errors.message_too_large())

    def on_disconnect(self) -> None:
        """The socket is gone without ``session.end``: the session detaches (§14.1)."""
        if not self.closed:
            self._move(ConnectionState.CLOSED)
        session = self.session
        if session is not None and session.attached and session.is_attached_to(self.transport):
            session.detach()

    def _report(self, err: ProtocolError) -> None:
        if self.session is not None:
            self.session.error(err)
            if err.close_code is not None:
                self.close(err.close_code)
        else:
            self._send_error(err)

    # ------------------------------------------------------------------ timers
    async def first_message_timeout(self) -> None:
        """Legacy fallback at 3 s (App. A), else ``invalid_format`` + 1008 at 15 s (§4.1)."""
        settings = self.manager.settings
        legacy_after = settings.legacy_ready_timeout_seconds
        deadline = settings.first_message_timeout_seconds
        start = self.clock.now()
        if legacy_after > 0 and self.credential is not None and self.credential.can_create:
            await self.clock.sleep(legacy_after)
            if self.state is not ConnectionState.AWAITING_FIRST:
                return
            await self._create_legacy()
            return
        await self.clock.sleep(max(0.0, start + deadline - self.clock.now()))
        if self.state is ConnectionState.AWAITING_FIRST:
            self._send_error(errors.first_message_timeout())

    # ------------------------------------------------------------------ CONNECTED state
    async def _before_session(self, event: ce.ClientEvent) -> None:
        match event:
            case ce.InputAudio():
                return  # dropped silently: clients often stream before session.ready
            case ce.SessionUpdate():
                self._move(ConnectionState.OPENING)
                await self._create(event)
            case ce.SessionResume():
                self._move(ConnectionState.OPENING)
                await self._resume(event)
            case _:
                self._send_error(errors.not_allowed_before_ready(event.type))

    async def _create(self, event: ce.SessionUpdate) -> None:
        assert self.credential is not None
        if not self.credential.can_create:
            self._send_error(errors.unauthorized())
            return
        try:
            update = parse_session(event.session)
        except ValidationError:
            self._move(ConnectionState.AWAITING_FIRST)
            self._send_error(errors.invalid_fields("session.update"))
            return
        try:
            config = await self._first_config(update)
        except ProtocolError as err:
            self._send_error(err.fatal(err.close_code or errors.CLOSE_POLICY))
            return
        if self.manager.at_capacity():
            self._send_error(errors.at_capacity())
            return
        self._entered(await self.manager.create(config, self.credential, self.transport))

    async def _first_config(self, update: SessionIn) -> SessionConfig:
        """Validate a first update in the contract's order (§7.1) into a configuration."""
        manager = self.manager
        base = manager.new_config()
        ctx = ValidationContext(tuple(manager.settings.voice_ids()))
        if update.agent_id is not None:
            if update.other_fields_set():
                raise errors.agent_id_exclusive()
            return await stored_agent_config(update.agent_id, base, manager.agent_lookup, ctx)
        return validate_update(update, base, ctx, first=True)

    async def _resume(self, event: ce.SessionResume) -> None:
        assert self.credential is not None
        self._entered(await self.manager.resume(event.session_id, self.credential, self.transport))

    async def _create_legacy(self) -> None:
        """App. A: a client that never sends ``session.update`` gets the default session."""
        assert self.credential is not None
        if self.manager.at_capacity():
            self._send_error(errors.at_capacity())
            return
        self._entered(
            await self.manager.create(
                self.manager.new_config(), self.credential, self.transport, legacy=True
            )
        )

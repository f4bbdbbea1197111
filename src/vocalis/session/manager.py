"""All sessions of one server: creation, capacity, resume and shutdown (§4, §14, §15).

A session outlives its connection (resume), so its task belongs to the manager, not to the socket.
Resume tokens of ended sessions stay known while their record is kept, so a late resume fails with
``session_not_found`` rather than ``unauthorized`` (§3.4).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from vocalis import ids, metrics
from vocalis.protocol import errors
from vocalis.protocol.config import SessionConfig
from vocalis.providers.base import ProviderSet
from vocalis.providers.workers import node_lag
from vocalis.session import admission
from vocalis.session.engine import Session
from vocalis.session.hooks import AgentLookup, Credential, SessionDeps, SessionRecord
from vocalis.session.lifecycle import State, Transport

log = logging.getLogger(__name__)

MAX_ENDED_REMEMBERED = 10_000


class SessionManager:
    def __init__(self, deps: SessionDeps, load_probe: Callable[[], float] = node_lag) -> None:
        self.deps = deps
        self.load_probe = load_probe  # backlog of the model workers, seconds
        self.settings = deps.settings
        self.clock = deps.clock
        self._live: dict[str, Session] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tokens: dict[str, str] = {}  # resume token -> session id (live and ended)
        self._ended: OrderedDict[str, None] = OrderedDict()

    @property
    def agent_lookup(self) -> AgentLookup | None:
        return self.deps.agent_lookup

    @property
    def providers(self) -> ProviderSet:
        return self.deps.providers

    @providers.setter
    def providers(self, providers: ProviderSet) -> None:
        """Sessions created from now on use ``providers`` (tests swap in scripted models)."""
        self.deps = replace(self.deps, providers=providers)

    # ------------------------------------------------------------------ queries
    def live_sessions(self) -> list[Session]:
        return list(self._live.values())

    def live_records(self) -> list[SessionRecord]:
        return [s.record() for s in self._live.values()]

    def get(self, session_id: str) -> Session | None:
        return self._live.get(session_id)

    def session_for_resume_token(self, token: str) -> str | None:
        return self._tokens.get(token)

    def budget(self) -> admission.Budget:
        limit = self.settings.max_sessions
        if limit is None:
            limit = self.deps.providers.session_budget
        return admission.Budget(limit, self.settings.admission_max_lag_seconds)

    def load(self) -> admission.Load:
        return admission.Load(len(self._live), self.load_probe())

    def at_capacity(self) -> bool:
        """Asked exactly when a new session is about to be created; a refusal is counted."""
        verdict = admission.decide(self.budget(), self.load())
        if verdict is admission.Verdict.ADMIT:
            return False
        metrics.admission_refused(verdict.value)
        log.info("new session refused: %s (%d sessions held)", verdict.value, len(self._live))
        return True

    def new_config(self) -> SessionConfig:
        return SessionConfig(
            id=ids.session_id(),
            default_system_prompt=self.settings.default_system_prompt,
            default_voice=self.settings.default_voice,
        )

    # ------------------------------------------------------------------ lifecycle
    async def create(
        self,
        config: SessionConfig,
        credential: Credential,
        transport: Transport,
        *,
        legacy: bool = False,
    ) -> Session:
        """Start a session and attach ``transport`` (capacity checked by the caller)."""
        cap = float(self.settings.default_max_session_duration_seconds)
        if credential.max_session_duration_seconds is not None:
            cap = min(cap, float(credential.max_session_duration_seconds))
        llm = None
        factory = self.deps.llm_factory
        if config.llm and factory is not None:
            llm = metrics.timed_llm(factory(config.llm[0]), "external")
        resume_token = ids.opaque_token()
        session = Session(
            config=config,
            deps=self.deps,
            cap_seconds=cap,
            resume_token=resume_token,
            llm=llm,
            legacy=legacy,
        )
        self._live[session.id] = session
        self._tokens[resume_token] = session.id
        metrics.session_started()
        metrics.set_sessions_active(len(self._live))
        self._tasks[session.id] = asyncio.create_task(self._run(session))
        await session.started()
        session.attach(transport, resumed=False, send_updated=not legacy)
        return session

    async def _run(self, session: Session) -> None:
        try:
            await session.run()
        finally:
            self._live.pop(session.id, None)
            self._tasks.pop(session.id, None)
            metrics.session_ended(session.close_reason or "error")
            metrics.set_sessions_active(len(self._live))
            self._ended[session.id] = None
            while len(self._ended) > MAX_ENDED_REMEMBERED:
                old, _ = self._ended.popitem(last=False)
                self._tokens = {t: s for t, s in self._tokens.items() if s != old}
            if self.deps.recorder is not None:
                try:
                    await self.deps.recorder.session_ended(session.record())
                except Exception:
                    log.exception("could not record the end of session %s", session.id)

    async def resume(
        self, session_id: str, credential: Credential, transport: Transport
    ) -> Session:
        """§14.2: checks in order, then attach (taking over an older connection)."""
        session = self._live.get(session_id)
        if session is None or session.state is State.ENDED:
            raise errors.session_not_found()
        if credential.kind == "resume" and credential.session_id != session_id:
            raise errors.session_forbidden()
        if session.attached:
            session.take_over()
        session.attach(transport, resumed=True)
        return session

    async def shutdown(self) -> None:
        """Server shutdown: every session ends with ``server_shutdown`` and close 1001."""
        for session in list(self._live.values()):
            session.end("server_shutdown", close_code=errors.CLOSE_GOING_AWAY)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)

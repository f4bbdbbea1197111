"""All sessions of one server: creation, capacity, resume and shutdown (§4, §14, §15).

A session outlives its connection (resume), so its task belongs to the manager, not to the socket.
Resume tokens of ended sessions stay known while their record is kept, so a late resume fails with
``session_not_found`` rather than ``unauthorized`` (§3.4).

With shared state (``SessionDeps.shared``, Redis) the node is one of several: sessions are
checkpointed, a resume may restore a session another node ran, and a session resumed elsewhere
is let go of here without ending it (``session/cluster.py``). A session let go of is *moved*: its
end is neither counted nor recorded, since it goes on elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from vocalis import ids, metrics
from vocalis.protocol import errors
from vocalis.protocol.config import SessionConfig
from vocalis.providers.base import LLM, ProviderSet
from vocalis.providers.workers import node_lag
from vocalis.session import admission
from vocalis.session import checkpoint as cp
from vocalis.session.cluster import CLOSE_SERVICE_RESTART, Cluster
from vocalis.session.engine import Session
from vocalis.session.hooks import AgentLookup, Credential, SessionDeps, SessionRecord
from vocalis.session.lifecycle import State, Transport
from vocalis.session.shared import SharedStateUnavailable

log = logging.getLogger(__name__)

MAX_ENDED_REMEMBERED = 10_000
#: An ended session is freed by a full garbage collection, run at most this often (seconds).
COLLECT_EVERY_SECONDS = 2.0
#: Collections an ended session gets before the manager stops trying (see _collect_ended):
#: ~20 s. With 5 (~10 s), tests/integration/test_session_memory.py failed once each in two
#: full test runs (a session still alive after 10 s) and never alone; what held it so long is
#: not known (the tests now print it). A collection costs the loop 1-2 ms, and the manager
#: runs them only while an ended session is still in memory, so trying longer costs little.
COLLECT_ATTEMPTS = 10


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
        self._moved: set[str] = set()  # let go of to another node: not ended, not recorded
        self._collected_at = float("-inf")
        self._collection: asyncio.TimerHandle | None = None
        # ended sessions not yet seen freed, with the collections they have had
        self._uncollected: list[tuple[weakref.ref[Session], int]] = []
        self.draining = False
        self.cluster: Cluster | None = None
        if deps.shared is not None:
            self.cluster = Cluster(deps.shared, deps.settings, deps.clock)
            deps.shared.on_release(self.release)

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

    async def lookup_resume_token(self, token: str) -> str | None:
        """The session of a resume token, known here or, in a cluster, to any node."""
        found = self._tokens.get(token)
        if found is None and self.deps.shared is not None:
            found = await self.deps.shared.session_for_resume_token(token)
        return found

    def budget(self) -> admission.Budget:
        limit = self.settings.max_sessions
        if limit is None:
            limit = self.deps.providers.session_budget
        return admission.Budget(limit, self.settings.admission_max_lag_seconds)

    def load(self) -> admission.Load:
        return admission.Load(len(self._live), self.load_probe())

    def at_capacity(self) -> bool:
        """Asked exactly when a new session is about to be created; a refusal is counted."""
        if self.draining:
            return True  # SIGTERM: the balancer is moving callers to other nodes
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
        resume_token = ids.opaque_token()
        session = Session(
            config=config,
            deps=self.deps,
            cap_seconds=cap,
            resume_token=resume_token,
            llm=self._llm_for(config),
            legacy=legacy,
        )
        if self.deps.shared is not None:
            # with the store down the session still runs here; its checkpoint task records the
            # token once the store is back (Cluster.keep)
            with contextlib.suppress(SharedStateUnavailable):
                await self.deps.shared.remember_resume_token(resume_token, session.id)
        await self._start(session)
        session.attach(transport, resumed=False, send_updated=not legacy)
        return session

    def _llm_for(self, config: SessionConfig) -> LLM | None:
        factory = self.deps.llm_factory
        if config.llm and factory is not None:
            return metrics.timed_llm(factory(config.llm[0]), "external")
        return None

    async def _start(self, session: Session) -> None:
        self._live[session.id] = session
        self._tokens[session.resume_token] = session.id
        metrics.session_started()
        metrics.set_sessions_active(len(self._live))
        self._tasks[session.id] = asyncio.create_task(self._run(session))
        await session.started()
        if self.cluster is not None:
            session.spawn(self.cluster.keep(session, self._lost))

    async def _run(self, session: Session) -> None:
        try:
            await session.run()
        finally:
            self._live.pop(session.id, None)
            self._tasks.pop(session.id, None)
            moved = session.id in self._moved
            self._moved.discard(session.id)
            if moved:
                metrics.set_sessions_active(len(self._live))
            else:
                await self._ended_here(session)

    async def _ended_here(self, session: Session) -> None:
        """Bookkeeping of a session that ended on this node (not one moved elsewhere)."""
        await self._forget(session)
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
        self._uncollected.append((weakref.ref(session), 0))
        self._schedule_collection()

    def _schedule_collection(self) -> None:
        """Collect once the ending session's own task is done (its frames still hold it now),
        and at most every ``COLLECT_EVERY_SECONDS``."""
        if self._collection is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.1, self._collected_at + COLLECT_EVERY_SECONDS - loop.time())
        self._collection = loop.call_later(delay, self._collect_ended)

    def _collect_ended(self) -> None:
        """Free ended sessions now rather than whenever the collector gets to them.

        A session is a web of reference cycles (its parts call back into it, its tasks hold
        their coroutines), so it is freed by the cyclic collector, not when its last task
        ends; and full collections are rare. In a 10-minute soak of 20 callers, RSS rose by
        ~200 MB between two of them and fell back at the next. The server freezes its
        start-up objects (``serve.freeze_start_up_objects``), so a full pass costs the event
        loop 1-2 ms (measured once, with the embedded stack loaded, not by a benchmark).
        """
        self._collection = None
        self._collected_at = asyncio.get_running_loop().time()  # the clock call_later runs on
        gc.collect()
        # A session whose connection is still closing is still referenced by it: collect
        # again later (a busy loop can take longer than the first delay), a few times at most.
        self._uncollected = [
            (ref, tries + 1)
            for ref, tries in self._uncollected
            if ref() is not None and tries + 1 < COLLECT_ATTEMPTS
        ]
        if self._uncollected:
            self._schedule_collection()

    async def resume(
        self, session_id: str, credential: Credential, transport: Transport
    ) -> Session:
        """§14.2: checks in order, then attach (taking over an older connection)."""
        session = self._live.get(session_id)
        if session is None and self.cluster is not None:
            try:
                return await self._resume_elsewhere(session_id, credential, transport)
            except SharedStateUnavailable:
                log.warning("resume of %s refused for now: the shared store is down", session_id)
                raise errors.at_capacity() from None  # 1013: the client tries again
        if session is None or session.state is State.ENDED:
            raise errors.session_not_found()
        if credential.kind == "resume" and credential.session_id != session_id:
            raise errors.session_forbidden()
        if session.attached:
            session.take_over()
        session.attach(transport, resumed=True)
        return session

    # ------------------------------------------------------------------ cluster (cluster.py)
    async def _resume_elsewhere(
        self, session_id: str, credential: Credential, transport: Transport
    ) -> Session:
        """§14.2 for a session this node does not run: restore it from its checkpoint."""
        shared = self.deps.shared
        assert self.cluster is not None and shared is not None
        if self.draining:
            raise errors.at_capacity()  # 1013: try again, the balancer sends it elsewhere
        if await shared.load_checkpoint(session_id) is None:
            raise errors.session_not_found()
        if credential.kind == "resume" and credential.session_id != session_id:
            raise errors.session_forbidden()
        checkpoint = await self.cluster.take(session_id)
        if checkpoint is None:
            raise errors.session_not_found()
        session = self._live.get(session_id)  # resumed here meanwhile by a racing connection
        if session is None:
            session = Session(
                config=checkpoint.config,
                deps=self.deps,
                cap_seconds=checkpoint.cap_seconds,
                resume_token=checkpoint.resume_token,
                llm=self._llm_for(checkpoint.config),
            )
            cp.restore_into(session, checkpoint)
            await self._start(session)
            cp.revive_calls(session)
            log.info("session %s restored from node %s", session_id, checkpoint.node_id)
        elif session.attached:
            session.take_over()
        session.attach(transport, resumed=True)
        return session

    async def release(self, session_id: str) -> None:
        """Another node resumes ``session_id``: write its last checkpoint and let go of it; the
        old socket, if still open, is closed 1001 (§14.2)."""
        session = self._live.get(session_id)
        if session is None or self.cluster is None or session.state is State.ENDED:
            return
        session.hand_off(errors.CLOSE_GOING_AWAY)
        try:
            await self.cluster.save(session)
        finally:
            self._let_go(session)

    def _lost(self, session: Session) -> None:
        """A checkpoint write found another owner (a release request was missed): let go."""
        log.info("session %s is now owned by another node", session.id)
        session.take_over()
        self._let_go(session)

    def _let_go(self, session: Session) -> None:
        self._moved.add(session.id)
        session.end("moved")

    async def _forget(self, session: Session) -> None:
        if self.deps.shared is None:
            return
        try:
            await self.deps.shared.forget(session.id)
        except Exception:
            log.warning("could not drop the checkpoint of %s", session.id, exc_info=True)

    async def drain(self, seconds: float) -> None:
        """Zero-drop shutdown of a cluster node: admit nothing more, let replies in progress
        finish (at most ``seconds``), then checkpoint every session and close its socket with
        1012 so that its client resumes on another node."""
        assert self.cluster is not None
        self.draining = True
        deadline = self.clock.now() + seconds
        while self.clock.now() < deadline and any(
            s.replies.current is not None for s in self._live.values()
        ):
            await self.clock.sleep(0.05)
        for session in list(self._live.values()):
            if session.state is State.ENDED:
                continue
            session.hand_off(CLOSE_SERVICE_RESTART)
            try:
                await self.cluster.save(session)
            except Exception:
                log.exception("could not checkpoint session %s while draining", session.id)
            self._let_go(session)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        log.info("drained: sessions handed to other nodes")

    async def shutdown(self) -> None:
        """Server shutdown: every session ends with ``server_shutdown`` and close 1001."""
        for session in list(self._live.values()):
            session.end("server_shutdown", close_code=errors.CLOSE_GOING_AWAY)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)

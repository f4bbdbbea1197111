"""Durable state of the server: stored agents, session records and their artifacts.

``open_storage(settings)`` connects (SQLite in ``data_dir`` by default, PostgreSQL when
``database_url`` is set), migrates the schema, registers this server as a node and ends the
sessions of servers that are gone (``nodes.py``), runs the retention clean-up, and starts the
heartbeat and the retention loops. See ``README.md`` for the
durability decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vocalis.protocol.voices import catalog_ids
from vocalis.settings import Settings
from vocalis.storage.agent_model import AgentRules
from vocalis.storage.agents import AgentStore
from vocalis.storage.crypto import SecretBox, load_or_create_key
from vocalis.storage.database import create_engine, migrate, normalize_url
from vocalis.storage.errors import InvalidInput, Problem, SessionActive
from vocalis.storage.http_tools import HttpxToolRunner
from vocalis.storage.nodes import NodeRegistry, new_node_id
from vocalis.storage.sessions import SessionStore, StoreRecorder
from vocalis.storage.timestamps import now_us
from vocalis.storage.webhooks import WebhookStore
from vocalis.storage.writes import WriteGate

log = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0


class Storage:
    """What the server wires in: ``agent_lookup``, ``recorder``, ``http_tool_runner``, stores."""

    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        agents: AgentStore,
        sessions: SessionStore,
        http_tool_runner: HttpxToolRunner,
        retention_days: int,
        node: NodeRegistry,
        webhooks: WebhookStore,
    ) -> None:
        self.engine = engine
        self.box = box
        self.agents = agents
        self.sessions = sessions
        self.agent_lookup = agents.lookup
        self.recorder = StoreRecorder(sessions)
        self.http_tool_runner = http_tool_runner
        self._retention_days = retention_days
        self.node = node
        self.webhooks = webhooks  # §19 subscriptions and deliveries
        self._retention_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None

    async def ping(self) -> bool:
        """Whether the database answers (``GET /healthz`` reports it as ``storage``)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def purge_expired(self) -> int:
        """Delete sessions that ended more than ``session_retention_days`` ago (0 = keep all)."""
        if self._retention_days <= 0:
            return 0
        cutoff = now_us() - self._retention_days * 86_400 * 1_000_000
        removed = await self.sessions.purge_ended_before(cutoff)
        if removed:
            log.info(
                "retention: deleted %d sessions older than %d days", removed, self._retention_days
            )
        return removed

    def start_retention(self, interval_seconds: float = RETENTION_INTERVAL_SECONDS) -> None:
        self._retention_task = asyncio.create_task(self._retention_loop(interval_seconds))
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.node.heartbeat_seconds)
            try:
                await self.node.beat()
            except Exception:
                log.exception("heartbeat failed")

    async def _retention_loop(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.purge_expired()
            except Exception:
                log.exception("retention clean-up failed")

    async def aclose(self) -> None:
        for task in (self._retention_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self.node.leave()
        except Exception:
            log.exception("could not remove this node's heartbeat row")
        await self.http_tool_runner.aclose()
        await self.engine.dispose()


async def open_storage(settings: Settings, **runner_options: Any) -> Storage:
    """Connect, migrate and start retention; ``runner_options`` go to the HTTP tool runner."""
    url = normalize_url(settings.database_url, settings.data_dir)
    engine = create_engine(url)
    try:
        await migrate(engine)
        box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
        gate = WriteGate(engine)
        rules = AgentRules(
            catalog_ids=tuple(catalog_ids()),
            default_system_prompt=settings.default_system_prompt,
            default_voice=settings.default_voice,
        )
        node_id = settings.node_id or new_node_id()
        sessions = SessionStore(engine, gate, settings.data_dir / "recordings", node_id)
        node = NodeRegistry(engine, gate, sessions, node_id, settings.node_heartbeat_seconds)
        await node.join()
        runner = HttpxToolRunner(
            settings.http_tool_allowed_hosts,
            settings.http_tool_max_response_bytes,
            **runner_options,
        )
        storage = Storage(
            engine,
            box,
            AgentStore(engine, box, rules, gate),
            sessions,
            runner,
            settings.session_retention_days,
            node,
            WebhookStore(engine, gate, box, settings.http_tool_allowed_hosts),
        )
        await storage.purge_expired()
    except BaseException:
        await engine.dispose()
        raise
    storage.start_retention()
    log.info("storage ready (%s, node %s)", engine.dialect.name, node_id)
    return storage


__all__ = ["InvalidInput", "Problem", "SessionActive", "Storage", "open_storage"]

"""Which server process owns which session rows, so clean-up only ends real orphans.

Each server process is a *node* with its own id (``node_id`` setting, else a fresh id per
process). Its session rows carry that id, and it refreshes a ``nodes`` row (``last_seen_us``)
every ``node_heartbeat_seconds``. A row that is not ``ended`` is an orphan only when its owner
is gone: its heartbeat is older than :data:`EXPIRY_BEATS` beats, or it has no owner (rows from
before schema version 2, when one server per database was assumed). Ending them is therefore
safe with several servers on one database, and a second server that fails to start cannot end the
live sessions of the first one (it also binds its port before opening storage).

At start a node also ends the rows of its own id: with a stable ``node_id`` those were left by
its previous run. Afterwards every heartbeat sweeps for orphans of nodes that died since, so a
crashed node's sessions are ended within about ``EXPIRY_BEATS + 1`` beats. A node that stops
cleanly ends its sessions itself and deletes its row.

Edge worth knowing: a node paused for longer than the expiry (e.g. a suspended VM) has its live
rows ended by others; its later writes never revive an ended row, so its records stay ended.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from vocalis.storage.schema import nodes
from vocalis.storage.sessions import SessionStore
from vocalis.storage.timestamps import now_us
from vocalis.storage.writes import WriteGate

log = logging.getLogger(__name__)

EXPIRY_BEATS = 3  # a node missing this many heartbeats in a row is dead


def new_node_id() -> str:
    """Host, pid and a random part: unique per process, and readable in the database."""
    host = socket.gethostname()[:32] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class NodeRegistry:
    def __init__(
        self,
        engine: AsyncEngine,
        gate: WriteGate,
        sessions: SessionStore,
        node_id: str,
        heartbeat_seconds: float,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._sessions = sessions
        self.node_id = node_id
        self.heartbeat_seconds = heartbeat_seconds
        self._expiry_us = int(EXPIRY_BEATS * heartbeat_seconds * 1_000_000)

    async def join(self) -> int:
        """Register this node and end the orphans of dead nodes and of this id's previous run."""
        await self._seen()
        return await self._sweep(keep_own=False)

    async def beat(self) -> int:
        """Heartbeat; ends orphans of nodes that died since the last beat."""
        await self._seen()
        return await self._sweep(keep_own=True)

    async def leave(self) -> None:
        """A clean stop: this node's sessions were ended by the manager; forget the node."""
        async with self._gate.begin() as conn:
            await conn.execute(delete(nodes).where(nodes.c.id == self.node_id))

    async def _seen(self) -> None:
        now = now_us()
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(nodes).values(id=self.node_id, started_us=now, last_seen_us=now)
        async with self._gate.begin() as conn:
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=[nodes.c.id], set_={"last_seen_us": now})
            )

    async def _sweep(self, *, keep_own: bool) -> int:
        alive_after_us = now_us() - self._expiry_us
        closed = await self._sessions.close_orphans(
            node_id=self.node_id, alive_after_us=alive_after_us, keep_own=keep_own
        )
        async with self._gate.begin() as conn:
            await conn.execute(
                delete(nodes).where(
                    nodes.c.last_seen_us < alive_after_us, nodes.c.id != self.node_id
                )
            )
        if closed:
            log.warning("marked %d sessions of stopped servers as ended", closed)
        return closed

"""The sessions and artifacts tables (§17.4) and the engine's SessionRecorder.

The engine reports a session when it changes (``session_changed``) and once when it ends
(``session_ended``); the end writes the record, the timeline and the optional recording in one
transaction. Live status always comes from the session manager; rows that are not ``ended`` are
only a trace for when their server dies: another node (or the same one restarted) then marks them
ended (:meth:`SessionStore.close_orphans`, ownership rules in ``nodes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vocalis.session.hooks import SessionRecord
from vocalis.storage import cursor as cursors
from vocalis.storage.errors import SessionActive
from vocalis.storage.schema import artifacts, nodes, sessions
from vocalis.storage.timestamps import now_us, seconds_to_us
from vocalis.storage.writes import WriteGate

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"^sess_[0-9a-f]{32}$")
ARTIFACT_TYPES = {"timeline": "application/json", "audio": "audio/wav"}


def valid_session_id(session_id: str) -> bool:
    return bool(SESSION_ID_RE.match(session_id))


@dataclass(frozen=True)
class SessionRow:
    """A session as the REST layer shows it, from storage or from the live manager."""

    id: str
    agent_id: str | None
    status: str
    created_us: int
    ended_us: int | None
    public_close_reason: str | None
    config: dict[str, Any] = field(default_factory=dict)
    artifact_types: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: SessionRecord) -> SessionRow:
        return cls(
            id=record.session_id,
            agent_id=record.agent_id,
            status=record.status,
            created_us=seconds_to_us(record.created_at),
            ended_us=seconds_to_us(record.ended_at) if record.ended_at is not None else None,
            public_close_reason=record.public_close_reason,
            config=record.config,
        )


@dataclass(frozen=True)
class SessionPage:
    items: list[SessionRow]
    next_cursor: str


@dataclass(frozen=True)
class Artifact:
    content_type: str
    data: bytes | None
    path: Path | None


class SessionStore:
    def __init__(
        self, engine: AsyncEngine, gate: WriteGate, recordings_dir: Path, node_id: str
    ) -> None:
        self._engine = engine
        self._node_id = node_id  # written on every row this process records (its owner)
        self._gate = gate
        self._recordings = recordings_dir

    # ------------------------------------------------------------------------ writes
    async def upsert(self, record: SessionRecord) -> None:
        async with self._gate.begin() as conn:
            await self._upsert(conn, record)

    async def finish(self, record: SessionRecord) -> None:
        """Record an ended session with its artifacts, all or nothing."""
        now = now_us()
        rows: list[dict[str, Any]] = []
        if record.timeline is not None:
            data = json.dumps(record.timeline, separators=(",", ":")).encode()
            rows.append({"type": "timeline", "data": data, "path": None})
        if record.recording is not None:
            if self._engine.dialect.name == "postgresql":
                # every node of a fleet reads the same database, not this node's disk (§17)
                rows.append({"type": "audio", "data": record.recording, "path": None})
            else:
                path = await _write_file(
                    self._recordings / f"{record.session_id}.wav", record.recording
                )
                rows.append({"type": "audio", "data": None, "path": str(path)})
        async with self._gate.begin() as conn:
            await self._upsert(conn, record)
            await conn.execute(delete(artifacts).where(artifacts.c.session_id == record.session_id))
            for row in rows:
                await conn.execute(
                    insert(artifacts).values(
                        session_id=record.session_id,
                        content_type=ARTIFACT_TYPES[row["type"]],
                        created_us=now,
                        **row,
                    )
                )

    async def _upsert(self, conn: AsyncConnection, record: SessionRecord) -> None:
        values = {
            "id": record.session_id,
            "agent_id": record.agent_id,
            "status": record.status,
            "created_us": seconds_to_us(record.created_at),
            "ended_us": seconds_to_us(record.ended_at) if record.ended_at is not None else None,
            "updated_us": now_us(),
            "public_close_reason": record.public_close_reason,
            "config": json.dumps(record.config),
            "node_id": self._node_id,
        }
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(sessions).values(**values)
        changed = {k: v for k, v in values.items() if k not in ("id", "created_us")}
        # An ended record is final: a late ``session_changed`` never revives it.
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[sessions.c.id],
                set_=changed,
                where=sessions.c.status != "ended",
            )
        )

    async def close_orphans(
        self,
        *,
        node_id: str,
        alive_after_us: int,
        keep_own: bool,
        reason: str = "server_shutdown",
    ) -> int:
        """Mark rows whose owner is gone as ended (at their last update); see ``nodes.py``.

        Owners still alive are the nodes seen after ``alive_after_us`` (plus ``node_id`` itself
        when ``keep_own``); every other non-ended row, unowned ones included, is an orphan.
        """
        alive = select(nodes.c.id).where(nodes.c.last_seen_us >= alive_after_us)
        if not keep_own:
            alive = alive.where(nodes.c.id != node_id)
        async with self._gate.begin() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    sessions.c.status != "ended",
                    or_(sessions.c.node_id.is_(None), sessions.c.node_id.not_in(alive)),
                )
                .values(status="ended", public_close_reason=reason, ended_us=sessions.c.updated_us)
            )
        return int(result.rowcount or 0)

    async def delete(self, session_id: str, live_ids: set[str]) -> bool:
        """Delete an ended session and its artifacts; :class:`SessionActive` if not ended."""
        if not valid_session_id(session_id):
            return False
        if session_id in live_ids:
            raise SessionActive(session_id)
        async with self._gate.begin() as conn:
            row = (
                await conn.execute(select(sessions.c.status).where(sessions.c.id == session_id))
            ).one_or_none()
            if row is None:
                return False
            if row.status != "ended":
                raise SessionActive(session_id)
            paths = await self._delete_rows(conn, [session_id])
        _unlink(paths)
        return True

    async def purge_ended_before(self, cutoff_us: int) -> int:
        """Retention: delete sessions that ended before ``cutoff_us`` (with their artifacts)."""
        async with self._gate.begin() as conn:
            old = (
                (
                    await conn.execute(
                        select(sessions.c.id).where(
                            sessions.c.status == "ended", sessions.c.ended_us < cutoff_us
                        )
                    )
                )
                .scalars()
                .all()
            )
            paths = await self._delete_rows(conn, list(old)) if old else []
        _unlink(paths)
        return len(old)

    async def _delete_rows(self, conn: AsyncConnection, session_ids: list[str]) -> list[str]:
        paths = (
            (
                await conn.execute(
                    select(artifacts.c.path).where(
                        artifacts.c.session_id.in_(session_ids), artifacts.c.path.is_not(None)
                    )
                )
            )
            .scalars()
            .all()
        )
        await conn.execute(delete(artifacts).where(artifacts.c.session_id.in_(session_ids)))
        await conn.execute(delete(sessions).where(sessions.c.id.in_(session_ids)))
        return [p for p in paths if p]

    # ------------------------------------------------------------------------- reads
    async def page(
        self,
        *,
        live: list[SessionRecord],
        status: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> SessionPage:
        """Newest first; live sessions (from the manager) override their stored rows."""
        after = cursors.decode(cursor)
        live_rows = [SessionRow.from_record(r) for r in live]
        live_ids = {r.id for r in live_rows}
        candidates = [
            r
            for r in live_rows
            if (status is None or r.status == status)
            and (agent_id is None or r.agent_id == agent_id)
            and (after is None or (r.created_us, r.id) < after)
        ]
        query = select(
            sessions.c.id,
            sessions.c.agent_id,
            sessions.c.status,
            sessions.c.created_us,
            sessions.c.ended_us,
            sessions.c.public_close_reason,
        )
        if live_ids:
            query = query.where(sessions.c.id.not_in(live_ids))
        if status is not None:
            query = query.where(sessions.c.status == status)
        if agent_id is not None:
            query = query.where(sessions.c.agent_id == agent_id)
        query = cursors.newest_first(query, sessions, cursor, limit)
        async with self._engine.connect() as conn:
            stored = [
                SessionRow(
                    r.id, r.agent_id, r.status, r.created_us, r.ended_us, r.public_close_reason
                )
                for r in (await conn.execute(query)).all()
            ]
        merged = sorted(candidates + stored, key=lambda r: (r.created_us, r.id), reverse=True)
        shown = merged[:limit]
        more = len(merged) > limit
        next_cursor = cursors.encode(shown[-1].created_us, shown[-1].id) if more else ""
        return SessionPage(shown, next_cursor)

    async def get(self, session_id: str) -> SessionRow | None:
        if not valid_session_id(session_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(sessions).where(sessions.c.id == session_id))
            ).one_or_none()
            if row is None:
                return None
            types = (
                (
                    await conn.execute(
                        select(artifacts.c.type)
                        .where(artifacts.c.session_id == session_id)
                        .order_by(artifacts.c.type.desc())
                    )
                )
                .scalars()
                .all()
            )
        return SessionRow(
            row.id,
            row.agent_id,
            row.status,
            row.created_us,
            row.ended_us,
            row.public_close_reason,
            json.loads(row.config),
            tuple(types),
        )

    async def artifact(self, session_id: str, artifact_type: str) -> Artifact | None:
        if not valid_session_id(session_id) or artifact_type not in ARTIFACT_TYPES:
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(artifacts).where(
                        artifacts.c.session_id == session_id, artifacts.c.type == artifact_type
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return Artifact(row.content_type, row.data, Path(row.path) if row.path else None)


class StoreRecorder:
    """:class:`~vocalis.session.hooks.SessionRecorder` over a :class:`SessionStore`.

    A storage failure is logged, never raised into the engine: a live conversation outranks its
    record.
    """

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def session_changed(self, record: SessionRecord) -> None:
        try:
            await self._store.upsert(record)
        except Exception:
            log.exception("could not record session %s", record.session_id)

    async def session_ended(self, record: SessionRecord) -> None:
        try:
            await self._store.finish(record)
        except Exception:
            log.exception("could not record the end of session %s", record.session_id)


async def _write_file(path: Path, data: bytes) -> Path:
    """Write atomically and durably (temp file, fsync, rename) in a worker thread."""

    def write() -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    return await asyncio.to_thread(write)


def _unlink(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)

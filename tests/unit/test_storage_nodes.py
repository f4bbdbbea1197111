"""Session ownership: clean-up ends only sessions whose server is gone (issue #9)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text, update

from vocalis.session.hooks import SessionRecord
from vocalis.settings import Settings
from vocalis.storage import Storage, open_storage
from vocalis.storage.schema import nodes


def _record(n: int) -> SessionRecord:
    return SessionRecord(f"sess_{n:032x}", None, "active", time.time(), {})


async def _open(tmp_path: Path, **settings: object) -> Storage:
    return await open_storage(Settings(data_dir=tmp_path, secret_key="k", **settings))


async def _status(storage: Storage, n: int) -> str:
    row = await storage.sessions.get(_record(n).session_id)
    assert row is not None
    return row.status


async def test_a_second_node_leaves_a_live_nodes_sessions_alone(tmp_path: Path) -> None:
    first = await _open(tmp_path)
    second = None
    try:
        await first.sessions.upsert(_record(1))
        second = await _open(tmp_path)  # joins: the first node's heartbeat is fresh
        assert second.node.node_id != first.node.node_id
        assert await _status(first, 1) == "active"
        await second.node.beat()
        assert await _status(first, 1) == "active"
    finally:
        if second is not None:
            await second.aclose()
        await first.aclose()


async def test_a_dead_nodes_sessions_end_at_the_next_heartbeat(tmp_path: Path) -> None:
    first = await _open(tmp_path)
    second = await _open(tmp_path)
    try:
        await first.sessions.upsert(_record(1))
        await second.sessions.upsert(_record(2))
        async with first.engine.begin() as conn:  # the first node stops beating
            await conn.execute(
                update(nodes).where(nodes.c.id == first.node.node_id).values(last_seen_us=0)
            )
        assert await second.node.beat() == 1
        ended = await second.sessions.get(_record(1).session_id)
        assert ended is not None and ended.status == "ended"
        assert ended.public_close_reason == "server_shutdown"
        assert await _status(second, 2) == "active"  # its own live session is kept
    finally:
        await second.aclose()
        await first.aclose()


async def test_a_restart_with_a_stable_node_id_ends_its_previous_runs_sessions(
    tmp_path: Path,
) -> None:
    before = await _open(tmp_path, node_id="edge-1")
    await before.sessions.upsert(_record(1))
    await before.engine.dispose()  # a crash: no clean leave(), the heartbeat row stays fresh
    after = await _open(tmp_path, node_id="edge-1")
    try:
        assert await _status(after, 1) == "ended"
    finally:
        await after.aclose()


async def test_a_version_1_file_is_migrated_and_its_unowned_rows_end(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "vocalis.db") as db:  # what schema version 1 created
        db.executescript(
            """
            CREATE TABLE vocalis_schema (version INTEGER NOT NULL);
            INSERT INTO vocalis_schema VALUES (1);
            CREATE TABLE agents (id VARCHAR(64) PRIMARY KEY, name TEXT NOT NULL,
                created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL, document TEXT NOT NULL,
                secrets TEXT NOT NULL);
            CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY, agent_id VARCHAR(64),
                status VARCHAR(16) NOT NULL, created_us BIGINT NOT NULL, ended_us BIGINT,
                updated_us BIGINT NOT NULL, public_close_reason VARCHAR(32), config TEXT NOT NULL);
            CREATE TABLE artifacts (session_id VARCHAR(64) NOT NULL REFERENCES sessions(id),
                type VARCHAR(16) NOT NULL, content_type VARCHAR(64) NOT NULL, data BLOB,
                path TEXT, created_us BIGINT NOT NULL, PRIMARY KEY (session_id, type));
            """
        )
        db.execute(
            "INSERT INTO sessions VALUES (?, NULL, 'active', ?, NULL, ?, NULL, '{}')",
            (_record(1).session_id, time.time_ns() // 1000, time.time_ns() // 1000),
        )
    storage = await _open(tmp_path)
    try:
        assert await _status(storage, 1) == "ended"
        await storage.sessions.upsert(_record(2))
        async with storage.engine.connect() as conn:
            owner = (
                await conn.execute(
                    text("SELECT node_id FROM sessions WHERE id = :id"),
                    {"id": _record(2).session_id},
                )
            ).scalar()
            version = (await conn.execute(text("SELECT version FROM vocalis_schema"))).scalar()
        assert owner == storage.node.node_id
        assert version == 3
    finally:
        await storage.aclose()

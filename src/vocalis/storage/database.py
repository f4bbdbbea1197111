"""Engine set-up and schema migrations.

Durability decision (SQLite): WAL journal with ``synchronous=FULL``. In WAL mode a commit appends
to the ``-wal`` file; with FULL the WAL is fsync'ed at every commit, so a committed record survives
``kill -9`` *and* an OS crash or power loss. ``NORMAL`` would survive ``kill -9`` too (the data
is already in the OS page cache) but may lose the last commits on power loss; our write rate
(agent edits, one or two writes per session) is far too low for the extra fsync to matter.

PostgreSQL (``database_url`` = ``postgresql+asyncpg://…``) commits durably by default
(``synchronous_commit=on``).

Migrations: ``vocalis_schema`` holds one row with the schema version; :data:`MIGRATIONS` are
applied in order inside one transaction at startup (on PostgreSQL under an advisory lock so that
two servers starting together do not race).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vocalis.storage import schema

log = logging.getLogger(__name__)

SQLITE_FILE_NAME = "vocalis.db"
_MIGRATION_LOCK_ID = 0x766F63616C6973  # "vocalis"


def normalize_url(database_url: str | None, data_dir: Path) -> str:
    """The async SQLAlchemy URL: SQLite in ``data_dir`` by default; async drivers filled in."""
    if not database_url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(data_dir / SQLITE_FILE_NAME).resolve()}"
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    return url.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn)


def _v2_nodes(conn: Connection) -> None:
    """Session ownership: ``nodes`` and ``sessions.node_id``.

    Written to be idempotent because ``_v1_initial`` creates the *current* tables: on a new
    database both already exist, on an older file both are added (a nullable column, so existing
    rows stay valid without a table rebuild, on SQLite and PostgreSQL alike).
    """
    schema.nodes.create(conn, checkfirst=True)
    columns = {column["name"] for column in inspect(conn).get_columns("sessions")}
    if "node_id" not in columns:
        conn.execute(text("ALTER TABLE sessions ADD COLUMN node_id VARCHAR(64)"))


def _v3_webhooks(conn: Connection) -> None:
    """§19 webhook subscriptions and deliveries; idempotent like ``_v2_nodes``."""
    schema.webhook_subscriptions.create(conn, checkfirst=True)
    schema.webhook_deliveries.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_nodes),
    (3, _v3_webhooks),
]


async def migrate(engine: AsyncEngine) -> int:
    """Bring the schema to the newest version; returns that version."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS vocalis_schema (version INTEGER NOT NULL)")
        )
        version = (await conn.execute(text("SELECT max(version) FROM vocalis_schema"))).scalar()
        current = int(version or 0)
        for target, step in MIGRATIONS:
            if target > current:
                await conn.run_sync(step)
                await conn.execute(text("DELETE FROM vocalis_schema"))
                await conn.execute(
                    text("INSERT INTO vocalis_schema (version) VALUES (:v)"), {"v": target}
                )
                log.info("storage schema migrated to version %d", target)
                current = target
        return current

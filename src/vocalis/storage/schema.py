"""Tables. Times are integer Unix microseconds; JSON documents are stored as text."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("document", Text, nullable=False),  # the public agent fields (JSON)
    Column("secrets", Text, nullable=False),  # Fernet token of header values and API keys
    Index("ix_agents_created", "created_us", "id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger, nullable=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("public_close_reason", String(32), nullable=True),
    Column("config", Text, nullable=False),  # resolved configuration, secrets removed (JSON)
    # The server process that holds the live session (nodes.id); NULL on rows written before
    # schema version 2. Only that node's death makes a non-ended row an orphan.
    Column("node_id", String(64), nullable=True),
    Index("ix_sessions_created", "created_us", "id"),
    Index("ix_sessions_agent", "agent_id"),
    Index("ix_sessions_ended", "ended_us"),
)

# One row per running server process sharing this database, refreshed by its heartbeat.
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column(
        "session_id",
        String(64),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("type", String(16), primary_key=True),  # "timeline" | "audio"
    Column("content_type", String(64), nullable=False),
    Column("data", LargeBinary, nullable=True),  # timeline JSON bytes
    Column("path", Text, nullable=True),  # recordings live in data_dir/recordings
    Column("created_us", BigInteger, nullable=False),
)

"""Tables. Times are integer Unix microseconds; JSON documents are stored as text."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Column("data", LargeBinary, nullable=True),  # timeline JSON; a recording on PostgreSQL
    Column("path", Text, nullable=True),  # a recording on SQLite: data_dir/recordings
    Column("created_us", BigInteger, nullable=False),
)

# §19 subscriptions: account-level (session_id NULL, listed over REST) or the ad-hoc one a
# session's inline ``webhook`` makes (session_id set, never listed). ``secret`` is a Fernet token.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list
    Column("enabled", Boolean, nullable=False),
    Column("secret", Text, nullable=True),
    Column("secret_version", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_webhook_subscriptions_created", "created_us", "id"),
    Index("ix_webhook_subscriptions_session", "session_id"),
)

# One row per (subscription, session, event): the exact body signed, and where its delivery is.
# ``lease_until_us`` is the claim of the node sending it now, so two nodes never both send.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subscription_id", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempt_count", BigInteger, nullable=False),
    Column("http_status_code", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("delivered_us", BigInteger, nullable=True),
    Column("next_retry_us", BigInteger, nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("subscription_id", "session_id", "event", name="uq_webhook_delivery"),
    Index("ix_webhook_deliveries_session", "session_id", "created_us"),
    Index("ix_webhook_deliveries_due", "status", "next_retry_us"),
)

"""Webhook subscriptions and deliveries (§19), kept in the database so they outlive a process.

A delivery row is written before anything is sent and holds the exact body that is signed, so a
restart (or another node) resumes it where it stopped: any node claims a due row by setting a
lease (``lease_until_us``) in one conditional ``UPDATE``, which only one node can win. Secrets
are sealed with the server key like stored agents' header values and never leave this module
except to sign a body.

Why one module of ~430 lines: subscriptions, deliveries and their leases are one schema with one
set of rules (what a row means at each step); split, the lease rules would be in two places.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vocalis import ids
from vocalis.storage import cursor as cursors
from vocalis.storage.crypto import SecretBox
from vocalis.storage.errors import InvalidInput, problems_from_pydantic
from vocalis.storage.http_tools import host_allowed
from vocalis.storage.schema import webhook_deliveries as deliveries
from vocalis.storage.schema import webhook_subscriptions as subscriptions
from vocalis.storage.timestamps import iso
from vocalis.storage.writes import WriteGate

EVENTS = ("session.started", "session.completed", "call.connected", "call.ended", "call.failed")
URL_RE = re.compile(r"^https?://[^\s/?#]+\S*$")
MIN_SECRET_CHARS = 32


class SubscriptionIn(BaseModel):
    """A create or update body; strict JSON types, unknown fields ignored (§17.1)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    url: str | None = None
    events: list[str] | None = None
    secret: str | None = None
    agent_id: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class Due:
    """A claimed delivery, with what is needed to send it."""

    id: str
    subscription_id: str
    payload: bytes
    attempt_count: int
    url: str | None  # None: the subscription is gone
    secret: str | None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str


class WebhookStore:
    def __init__(
        self, engine: AsyncEngine, gate: WriteGate, box: SecretBox, allowed_hosts: list[str]
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._box = box
        self._allowed = tuple(h for h in allowed_hosts if h.strip())

    # ------------------------------------------------------------------ subscriptions
    def _check(self, body: Any, *, create: bool) -> SubscriptionIn:
        if not isinstance(body, dict):
            raise InvalidInput.one("body", "Input should be a valid dictionary")
        try:
            sub = SubscriptionIn.model_validate(body)
        except ValidationError as exc:
            raise InvalidInput(problems_from_pydantic(exc.errors())) from None
        fields = sub.model_fields_set
        if create:
            for name in ("url", "events", "secret"):
                if getattr(sub, name) is None:
                    raise InvalidInput.one(name, "Field required")
        if "url" in fields:
            self.check_url(sub.url)
        if "events" in fields:
            events = sub.events or []
            if not events:
                raise InvalidInput.one("events", "List should have at least 1 item")
            if len(set(events)) != len(events):
                raise InvalidInput.one("events", "Events must be unique")
            unknown = [e for e in events if e not in EVENTS]
            if unknown:
                raise InvalidInput.one("events", "Input should be one of: " + ", ".join(EVENTS))
        if "secret" in fields and (sub.secret is None or len(sub.secret) < MIN_SECRET_CHARS):
            raise InvalidInput.one(
                "secret", f"String should have at least {MIN_SECRET_CHARS} characters"
            )
        return sub

    def check_url(self, url: Any) -> None:
        """§19: an http(s) URL of at most 2048 characters, on a host the HTTP-tool rules allow."""
        if not isinstance(url, str) or not URL_RE.match(url) or len(url) > 2048:
            raise InvalidInput.one("url", "Input should be an http or https URL (≤ 2048 chars)")
        host = self.host_of(url)
        if not self.host_allowed(host):
            raise InvalidInput.one(
                "url", f"Host '{host}' is not in the server's http_tool_allowed_hosts"
            )

    @staticmethod
    def host_of(url: str) -> str:
        return httpx.URL(url).host

    def host_allowed(self, host: str) -> bool:
        return host_allowed(host, self._allowed)

    async def create(self, body: Any, now_us: int) -> dict[str, Any]:
        sub = self._check(body, create=True)
        row = {
            "id": ids.new_id("whsub"),
            "agent_id": sub.agent_id,
            "session_id": None,
            "url": sub.url,
            "events": json.dumps(sub.events),
            "enabled": True if sub.enabled is None else sub.enabled,
            "secret": self._box.seal(sub.secret),
            "secret_version": 1,
            "created_us": now_us,
            "updated_us": now_us,
        }
        async with self._gate.begin() as conn:
            await conn.execute(insert(subscriptions).values(**row))
        return _public(row)

    async def update(self, sub_id: str, body: Any, now_us: int) -> dict[str, Any] | None:
        sub = self._check(body, create=False)
        changes: dict[str, Any] = {"updated_us": now_us}
        for name in sub.model_fields_set:
            value = getattr(sub, name)
            if name == "events":
                changes["events"] = json.dumps(value)
            elif name == "secret":
                changes["secret"] = self._box.seal(value)
                changes["secret_version"] = subscriptions.c.secret_version + 1
            elif name == "enabled" and value is None:
                raise InvalidInput.one("enabled", "Input should be a valid boolean")
            elif name == "url" and value is None:
                raise InvalidInput.one("url", "Input should be a valid string")
            else:
                changes[name] = value
        async with self._gate.begin() as conn:
            result = await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == sub_id, subscriptions.c.session_id.is_(None))
                .values(**changes)
            )
            if not result.rowcount:
                return None
        return await self.get(sub_id)

    async def get(self, sub_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(subscriptions).where(
                        subscriptions.c.id == sub_id, subscriptions.c.session_id.is_(None)
                    )
                )
            ).one_or_none()
        return _public(row._asdict()) if row is not None else None

    async def delete(self, sub_id: str) -> bool:
        async with self._gate.begin() as conn:
            result = await conn.execute(
                delete(subscriptions).where(
                    subscriptions.c.id == sub_id, subscriptions.c.session_id.is_(None)
                )
            )
        return bool(result.rowcount)

    async def page(self, limit: int, cursor: str | None, include_disabled: bool) -> Page:
        query = select(subscriptions).where(subscriptions.c.session_id.is_(None))
        if not include_disabled:
            query = query.where(subscriptions.c.enabled.is_(True))
        query = cursors.newest_first(query, subscriptions, cursor, limit)
        async with self._engine.connect() as conn:
            rows = [r._asdict() for r in (await conn.execute(query)).all()]
        shown = rows[:limit]
        more = len(rows) > limit
        next_cursor = cursors.encode(shown[-1]["created_us"], shown[-1]["id"]) if more else ""
        return Page([_public(r) for r in shown], next_cursor)

    async def set_session_webhook(
        self, session_id: str, webhook: dict[str, Any], now_us: int
    ) -> None:
        """The ad-hoc subscription of a session's inline ``webhook`` (§6.1), made or updated."""
        secret = webhook.get("secret")
        values = {
            "url": webhook["url"],
            "events": json.dumps(webhook.get("events") or []),
            "secret": self._box.seal(secret) if secret else None,
            "updated_us": now_us,
        }
        async with self._gate.begin() as conn:
            found = (
                await conn.execute(
                    select(subscriptions.c.id).where(subscriptions.c.session_id == session_id)
                )
            ).scalar()
            if found is not None:
                await conn.execute(
                    update(subscriptions).where(subscriptions.c.id == found).values(**values)
                )
                return
            await conn.execute(
                insert(subscriptions).values(
                    id=ids.new_id("whsub"),
                    agent_id=None,
                    session_id=session_id,
                    enabled=True,
                    secret_version=1,
                    created_us=now_us,
                    **values,
                )
            )

    # --------------------------------------------------------------------- deliveries
    async def enqueue(
        self, event: str, session_id: str, agent_id: str | None, payload: bytes, now_us: int
    ) -> int:
        """One pending delivery per matching subscription; a repeat for the same
        (subscription, session, event) is a no-op, so callers may enqueue more than once."""
        match = select(subscriptions.c.id, subscriptions.c.events).where(
            subscriptions.c.enabled.is_(True),
            or_(subscriptions.c.session_id.is_(None), subscriptions.c.session_id == session_id),
            or_(subscriptions.c.agent_id.is_(None), subscriptions.c.agent_id == agent_id),
        )
        added = 0
        async with self._gate.begin() as conn:
            for sub_id, events in (await conn.execute(match)).all():
                if event not in json.loads(events):
                    continue
                exists = (
                    await conn.execute(
                        select(deliveries.c.id).where(
                            deliveries.c.subscription_id == sub_id,
                            deliveries.c.session_id == session_id,
                            deliveries.c.event == event,
                        )
                    )
                ).scalar()
                if exists is not None:
                    continue
                await conn.execute(
                    insert(deliveries).values(
                        id=ids.new_id("whdel"),
                        subscription_id=sub_id,
                        session_id=session_id,
                        event=event,
                        payload=payload,
                        status="pending",
                        attempt_count=0,
                        next_retry_us=now_us,
                        created_us=now_us,
                        updated_us=now_us,
                    )
                )
                added += 1
        return added

    async def claim_due(self, now_us: int, lease_us: int, limit: int = 16) -> list[Due]:
        """Due pending deliveries this node now holds (a lease no other node can take)."""
        free = or_(deliveries.c.lease_until_us.is_(None), deliveries.c.lease_until_us < now_us)
        due = and_(deliveries.c.status == "pending", deliveries.c.next_retry_us <= now_us, free)
        async with self._engine.connect() as conn:
            candidates = (
                (
                    await conn.execute(
                        select(deliveries.c.id)
                        .where(due)
                        .order_by(deliveries.c.next_retry_us, deliveries.c.created_us)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        claimed: list[Due] = []
        for delivery_id in candidates:
            async with self._gate.begin() as conn:
                won = await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery_id, due)
                    .values(lease_until_us=now_us + lease_us)
                )
                if not won.rowcount:
                    continue  # another node took it
                row = (
                    await conn.execute(
                        select(deliveries, subscriptions.c.url, subscriptions.c.secret)
                        .select_from(
                            deliveries.outerjoin(
                                subscriptions, subscriptions.c.id == deliveries.c.subscription_id
                            )
                        )
                        .where(deliveries.c.id == delivery_id)
                    )
                ).one()
            claimed.append(
                Due(
                    row.id,
                    row.subscription_id,
                    bytes(row.payload),
                    int(row.attempt_count),
                    row.url,
                    self._box.open(row.secret) if row.secret else None,
                )
            )
        return claimed

    async def record_attempt(
        self,
        delivery_id: str,
        *,
        status: str,
        http_status_code: int | None,
        error: str | None,
        next_retry_us: int | None,
        now_us: int,
    ) -> None:
        async with self._gate.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    status=status,
                    attempt_count=deliveries.c.attempt_count + 1,
                    http_status_code=http_status_code,
                    error=error,
                    next_retry_us=next_retry_us,
                    delivered_us=now_us if status == "delivered" else None,
                    lease_until_us=None,
                    updated_us=now_us,
                )
            )

    async def next_due_us(self) -> int | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.min(deliveries.c.next_retry_us)).where(
                        deliveries.c.status == "pending"
                    )
                )
            ).scalar()
        return int(value) if value is not None else None

    async def session_deliveries(self, session_id: str, limit: int, cursor: str | None) -> Page:
        query = cursors.newest_first(
            select(deliveries).where(deliveries.c.session_id == session_id),
            deliveries,
            cursor,
            limit,
        )
        async with self._engine.connect() as conn:
            rows = [r._asdict() for r in (await conn.execute(query)).all()]
        shown = rows[:limit]
        more = len(rows) > limit
        next_cursor = cursors.encode(shown[-1]["created_us"], shown[-1]["id"]) if more else ""
        return Page([_delivery(r) for r in shown], next_cursor)

    async def latest_deliveries(self, session_id: str) -> list[dict[str, Any]]:
        """The most recently attempted delivery of each subscription for this session."""
        async with self._engine.connect() as conn:
            rows = [
                r._asdict()
                for r in (
                    await conn.execute(
                        select(deliveries)
                        .where(deliveries.c.session_id == session_id)
                        .order_by(deliveries.c.updated_us.desc(), deliveries.c.id.desc())
                    )
                ).all()
            ]
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest.setdefault(row["subscription_id"], row)
        return [_delivery(r) for r in latest.values()]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A subscription as REST shows it: never its secret."""
    return {
        "id": row["id"],
        "agent_id": row["agent_id"],
        "url": row["url"],
        "events": json.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "secret_version": int(row["secret_version"]),
        "created_at": iso(row["created_us"]),
        "updated_at": iso(row["updated_us"]),
    }


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        "id": row["id"],
        "subscription_id": row["subscription_id"],
        "session_id": row["session_id"],
        "attempt_count": int(row["attempt_count"]),
        "status": row["status"],
        "http_status_code": row["http_status_code"],
        "error": row["error"],
        "delivered_at": iso(row["delivered_us"]) if row["delivered_us"] is not None else None,
        "next_retry_at": (
            iso(row["next_retry_us"]) if pending and row["next_retry_us"] is not None else None
        ),
        "created_at": iso(row["created_us"]),
    }

"""Webhook deliveries (§19): signed POSTs of ``session.started`` / ``session.completed``.

Sessions report to a :class:`WebhookRecorder`, which wraps the storage recorder: after a record
is written it adds one pending delivery per matching subscription (``storage/webhooks.py``).
The :class:`WebhookDispatcher` loop claims due deliveries from storage and sends them, so a
delivery pending when a server stops is sent by the next one to run (this node after a restart,
or any other node). Retries follow the hosted schedule: 1 s, 5 s, 25 s after the failed attempts
(±20 % jitter so that many receivers recovering together are not hit at once), then ``failed``.
Time comes from an injectable clock, so tests run the schedule in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace

import httpx

from vocalis.server.rest.sessions import summary
from vocalis.session.clock import Clock
from vocalis.session.hooks import SessionRecord, SessionRecorder
from vocalis.storage.http_tools import HostNotAllowedError, guarded_client
from vocalis.storage.sessions import SessionRow
from vocalis.storage.timestamps import iso_from_seconds
from vocalis.storage.webhooks import Due, WebhookStore

log = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (1.0, 5.0, 25.0)
JITTER = 0.2
SEND_TIMEOUT_SECONDS = 10.0
# A claim outlives one attempt (timeout plus margin): a node that dies mid-send frees its
# deliveries for others this long after it claimed them.
LEASE_SECONDS = SEND_TIMEOUT_SECONDS + 20.0
POLL_SECONDS = 5.0  # how often storage is checked for deliveries other nodes added


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """``X-AAI-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(event: str, record: SessionRecord, created_at: float) -> bytes:
    """The exact bytes sent and signed: ``event`` and ``type`` name the event (clients read
    either), ``data`` carries the §17.4 session list fields."""
    if event == "session.started":  # the session as it started, even when queued at its end
        record = replace(record, status="active", ended_at=None, public_close_reason=None)
    data = summary(SessionRow.from_record(record))
    body = {"event": event, "type": event, "created_at": iso_from_seconds(created_at), "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        allowed_hosts: Sequence[str],
        clock: Clock,
        *,
        delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._delays = tuple(delays)
        self._rng = rng or random.Random()
        self._poll = poll_seconds
        # Redirects are not followed: a 3xx is not a delivery, and the allow-list is then never
        # consulted for a second host.
        allowed = tuple(h for h in allowed_hosts if h.strip())
        self._client = guarded_client(allowed, follow_redirects=False, transport=transport)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _now_us(self) -> int:
        return round(self._clock.wall() * 1_000_000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhook-deliveries")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    # ------------------------------------------------------------------ events
    async def session_event(self, event: str, record: SessionRecord) -> None:
        """Queue ``event`` for every subscription that wants it (idempotent per session)."""
        now = self._now_us()
        webhook = record.extra.get("webhook")
        if isinstance(webhook, dict) and webhook.get("url"):
            await self._store.set_session_webhook(record.session_id, webhook, now)
        body = event_body(event, record, self._clock.wall())
        if await self._store.enqueue(event, record.session_id, record.agent_id, body, now):
            self._wake.set()

    # ------------------------------------------------------------------ sending
    async def _loop(self) -> None:
        while True:
            try:
                while await self._send_due():
                    pass
                wait = await self._until_next_due()
            except Exception:
                log.exception("webhook deliveries: storage failed; trying again")
                wait = self._poll
            await self._sleep_or_wake(wait)

    async def _send_due(self) -> int:
        claimed = await self._store.claim_due(self._now_us(), round(LEASE_SECONDS * 1e6))
        if claimed:
            await asyncio.gather(*(self._attempt(due) for due in claimed))
        return len(claimed)

    async def _until_next_due(self) -> float:
        next_us = await self._store.next_due_us()
        if next_us is None:
            return self._poll
        return min(self._poll, max(0.0, (next_us - self._now_us()) / 1e6))

    async def _sleep_or_wake(self, seconds: float) -> None:
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()

    async def _attempt(self, due: Due) -> None:
        status_code: int | None = None
        error: str | None = None
        final = False  # a failure no retry can fix
        if due.url is None:
            error, final = "subscription deleted", True
        else:
            headers = {"Content-Type": "application/json"}
            if due.secret:  # an inline webhook given without a secret is sent unsigned
                headers["X-AAI-Signature"] = signature(due.secret, due.payload, int(time.time()))
            try:
                response = await self._client.post(
                    due.url,
                    content=due.payload,
                    headers=headers,
                    timeout=httpx.Timeout(SEND_TIMEOUT_SECONDS),
                )
                status_code = response.status_code
                if not response.is_success:
                    error = f"HTTP {status_code}"
            except HostNotAllowedError as exc:
                error = f"host '{exc.host}' is not in the server's http_tool_allowed_hosts"
                final = True
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = due.attempt_count + 1
        now = self._now_us()
        if error is None:
            await self._store.record_attempt(
                due.id,
                status="delivered",
                http_status_code=status_code,
                error=None,
                next_retry_us=None,
                now_us=now,
            )
            return
        retry = not final and attempts <= len(self._delays)
        delay = (
            self._delays[attempts - 1] * self._rng.uniform(1 - JITTER, 1 + JITTER) if retry else 0
        )
        await self._store.record_attempt(
            due.id,
            status="pending" if retry else "failed",
            http_status_code=status_code,
            error=error,
            next_retry_us=now + round(delay * 1e6) if retry else None,
            now_us=now,
        )
        log.warning(
            "webhook delivery %s attempt %d failed (%s)%s",
            due.id,
            attempts,
            error,
            "; will retry" if retry else "; giving up",
        )


class WebhookRecorder:
    """A :class:`SessionRecorder` that records first, then queues the §19 events.

    ``session.started`` is queued on the first report of a session and again (a no-op if it
    exists) at its end, so a session too short for its first report still gets both events;
    ``session.completed`` only after the record and timeline are written.
    """

    def __init__(self, inner: SessionRecorder, dispatcher: WebhookDispatcher) -> None:
        self._inner = inner
        self._dispatcher = dispatcher
        self._started: set[str] = set()

    async def session_changed(self, record: SessionRecord) -> None:
        await self._inner.session_changed(record)
        if record.session_id not in self._started:
            self._started.add(record.session_id)
            await self._queue("session.started", record)

    async def session_ended(self, record: SessionRecord) -> None:
        await self._inner.session_ended(record)
        self._started.discard(record.session_id)
        await self._queue("session.started", record)
        await self._queue("session.completed", record)

    async def _queue(self, event: str, record: SessionRecord) -> None:
        try:
            await self._dispatcher.session_event(event, record)
        except Exception:
            log.exception("could not queue %s for session %s", event, record.session_id)

"""§19 webhooks end to end: real server, real SQLite file, real HTTP receiver.

The receiver verifies every delivery the way the hosted SDK documents (``X-AAI-Signature``
``t=<unix>,v1=<hex>``, HMAC-SHA256 over ``"<t>."`` + the raw body, timestamps within 300 s).
Retry waits run on a fast clock handed to the app (``webhook_clock``): the schedule is the real
one (1 s, 5 s, 25 s, jittered), only time passes faster.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.integration.postgres_fixture import BACKENDS, database_url_for
from vocalis.providers.fake import build_fake_providers
from vocalis.server.app import create_app
from vocalis.server.background import free_port
from vocalis.server.rest.standalone import build_app
from vocalis.settings import Settings

SECRET = "s" * 40
ROTATED = "r" * 40
INLINE_SECRET = "i" * 40
TOLERANCE_SECONDS = 300


def verify(payload: bytes, header: str, secret: str) -> dict[str, Any]:
    """The hosted SDK's check: raises ``ValueError`` on a bad or stale signature."""
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = int(fields["t"])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, fields["v1"]):
        raise ValueError("bad signature")
    if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
        raise ValueError("stale timestamp")
    return json.loads(payload)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """Answers each path with the next status of its plan (the last one repeats)."""

    base: str = ""
    plans: dict[str, list[int]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # verified only
    rejected: list[str] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        raw = await request.body()  # the exact bytes, before any parsing
        try:
            event = verify(raw, request.headers["x-aai-signature"], self.secrets[name])
        except (KeyError, ValueError) as exc:
            self.rejected.append(f"{name}: {exc}")
            return Response(status_code=400)
        assert request.headers["content-type"] == "application/json"
        self.received.append((name, event))
        plan = self.plans.get(name, [200])
        status = plan.pop(0) if len(plan) > 1 else plan[0]
        return Response(status_code=status)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for n, e in self.received if n == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    app = Starlette(routes=[Route("/hook/{name}", rx.hook, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    rx.base = f"http://127.0.0.1:{port}"
    yield rx
    server.should_exit = True
    thread.join(5)


class FastClock:
    """Real time sped up ``speed`` times (for the retry schedule only)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._mono0, self._wall0 = time.monotonic(), time.time()

    def now(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self.speed

    def wall(self) -> float:
        return self._wall0 + (time.time() - self._wall0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


@contextmanager
def serve(data_dir: Path, clock: FastClock) -> Iterator[str]:
    """The full server (fake models) on a port; yields its http base URL."""
    port = free_port()
    settings = Settings(
        providers="fake",
        data_dir=data_dir,
        port=port,
        http_tool_allowed_hosts=["127.0.0.1"],
    )
    app = create_app(settings, providers=build_fake_providers(), webhook_clock=clock)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    state = app.state.vocalis
    deadline = time.monotonic() + 30
    while not (server.started and state.ready.is_set()):
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


async def one_session(http: str, session: dict[str, Any]) -> str:
    async with websockets.connect(http.replace("http://", "ws://") + "/v1/ws") as ws:
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        await ws.send(json.dumps({"type": "session.end"}))
        session_id = ""
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "session.ready":
                session_id = event["session_id"]
    assert session_id
    return session_id


def wait_for(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def deliveries(http: str, session_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{http}/v1/sessions/{session_id}/webhook-deliveries")
    if resp.status_code == 404:  # the record of a session that just ended is being written
        return []
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["deliveries"]
    return items


def subscribe(http: str, url: str, events: list[str], secret: str = SECRET) -> dict[str, Any]:
    resp = httpx.post(
        f"{http}/v1/webhook-subscriptions", json={"url": url, "events": events, "secret": secret}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


DELIVERY_KEYS = {
    "id",
    "subscription_id",
    "session_id",
    "attempt_count",
    "status",
    "http_status_code",
    "error",
    "delivered_at",
    "next_retry_at",
    "created_at",
}


def test_signed_deliveries_retries_failures_and_refused_hosts(
    tmp_path: Path, receiver: Receiver
) -> None:
    both = ["session.started", "session.completed"]
    receiver.secrets.update(ok=ROTATED, flaky=SECRET, down=SECRET, inline=INLINE_SECRET)
    receiver.plans.update(flaky=[500, 500, 200], down=[500])
    with serve(tmp_path, FastClock(speed=100)) as http:
        ok = subscribe(http, f"{receiver.base}/hook/ok", both)
        rotated = httpx.patch(
            f"{http}/v1/webhook-subscriptions/{ok['id']}", json={"secret": ROTATED}
        ).json()
        assert rotated["secret_version"] == 2  # deliveries below verify with the new secret
        flaky = subscribe(http, f"{receiver.base}/hook/flaky", ["session.completed"])
        down = subscribe(http, f"{receiver.base}/hook/down", ["session.completed"])

        # A host outside http_tool_allowed_hosts is refused before anything is sent to it.
        for url in (receiver.base.replace("127.0.0.1", "localhost"), "http://10.0.0.7"):
            refused = httpx.post(
                f"{http}/v1/webhook-subscriptions",
                json={"url": f"{url}/hook/ok", "events": both, "secret": SECRET},
            )
            assert refused.status_code == 422 and refused.json()["param"] == "url", refused.text
        # An inline webhook (§6.1) to such a host is accepted on the socket but never sent.
        inline = {
            "url": receiver.base.replace("127.0.0.1", "localhost") + "/hook/inline",
            "events": ["session.completed"],
            "secret": INLINE_SECRET,
        }
        session_id = asyncio.run(one_session(http, {"webhook": inline}))

        def settled() -> list[dict[str, Any]] | None:
            items = deliveries(http, session_id)
            done = len(items) == 5 and all(d["status"] != "pending" for d in items)
            return items if done else None

        items = wait_for(settled)
        assert all(set(d) == DELIVERY_KEYS and d["session_id"] == session_id for d in items)
        by_sub: dict[str, list[dict[str, Any]]] = {}
        for d in items:
            by_sub.setdefault(d["subscription_id"], []).append(d)

        # ok: both events, delivered at the first attempt, signed with the rotated secret
        assert [d["status"] for d in by_sub[ok["id"]]] == ["delivered", "delivered"]
        assert all(d["attempt_count"] == 1 for d in by_sub[ok["id"]])
        started, completed = receiver.events("ok")
        assert started["event"] == started["type"] == "session.started"
        assert started["data"]["id"] == session_id and started["data"]["status"] == "active"
        assert started["data"]["ended_at"] is None and started["data"]["duration_seconds"] is None
        assert completed["event"] == completed["type"] == "session.completed"
        record = httpx.get(f"{http}/v1/sessions/{session_id}").json()
        assert record["status"] == "completed"
        listed = {k: record[k] for k in completed["data"]}
        assert completed["data"] == listed  # the §17.4 list fields, as REST shows them

        # flaky: 500, 500, then 200, on the retry schedule
        (f,) = by_sub[flaky["id"]]
        assert (f["status"], f["attempt_count"], f["http_status_code"]) == ("delivered", 3, 200)
        assert f["delivered_at"] is not None and f["next_retry_at"] is None
        assert len(receiver.events("flaky")) == 3

        # down: the first attempt and three retries, then failed
        (d,) = by_sub[down["id"]]
        assert (d["status"], d["attempt_count"], d["http_status_code"]) == ("failed", 4, 500)
        assert d["error"] == "HTTP 500" and d["delivered_at"] is None
        assert len(receiver.events("down")) == 4

        # inline to a refused host: failed at once, nothing reached the receiver
        ((i,),) = [v for k, v in by_sub.items() if k not in (ok["id"], flaky["id"], down["id"])]
        assert i["status"] == "failed" and i["attempt_count"] == 1 and i["http_status_code"] is None
        assert "localhost" in i["error"] and "http_tool_allowed_hosts" in i["error"]
        assert receiver.events("inline") == [] and receiver.rejected == []

        latest = httpx.get(f"{http}/v1/sessions/{session_id}/webhook-deliveries/latest").json()
        assert sorted(x["subscription_id"] for x in latest["deliveries"]) == sorted(by_sub)
        page = httpx.get(f"{http}/v1/sessions/{session_id}/webhook-deliveries?limit=2").json()
        assert len(page["deliveries"]) == 2 and page["has_more"] is True
        missing = httpx.get(f"{http}/v1/sessions/sess_{'0' * 32}/webhook-deliveries")
        assert missing.status_code == 404 and missing.json()["code"] == "session_not_found"


def test_a_pending_delivery_is_sent_after_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    receiver.secrets["later"] = SECRET
    receiver.plans["later"] = [503]  # the receiver is down while the first server runs
    clock = FastClock(speed=5)  # retries after 0.2 s, 1 s, 5 s of real time
    with serve(tmp_path, clock) as http:
        sub = subscribe(http, f"{receiver.base}/hook/later", ["session.completed"])
        session_id = asyncio.run(one_session(http, {}))
        (first,) = wait_for(lambda: [d for d in deliveries(http, session_id) if d["attempt_count"]])
        assert first["status"] == "pending" and first["next_retry_at"] is not None
    tried_before = len(receiver.events("later"))
    receiver.plans["later"] = [200]  # back up; only the new server can deliver now

    with serve(tmp_path, clock) as http:
        (done,) = wait_for(
            lambda: [d for d in deliveries(http, session_id) if d["status"] == "delivered"]
        )
        assert done["id"] == first["id"] and done["subscription_id"] == sub["id"]
        assert done["attempt_count"] == tried_before + 1
    events = receiver.events("later")
    assert len(events) == tried_before + 1
    assert {e["data"]["id"] for e in events} == {session_id}
    assert events[-1]["data"]["status"] == "completed"


@pytest.fixture(params=BACKENDS)
async def rest(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    settings = Settings(
        data_dir=tmp_path,
        database_url=await database_url_for(request.param),
        http_tool_allowed_hosts=["hooks.example.com", "*.example.org"],
    )
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def test_subscription_routes(rest: httpx.AsyncClient) -> None:
    body = {
        "url": "https://hooks.example.com/voice",
        "events": ["session.completed", "call.ended"],
        "secret": SECRET,
        "agent_id": "agent_" + "a" * 32,
    }
    created = await rest.post("/v1/webhook-subscriptions", json=body)
    assert created.status_code == 201, created.text
    sub = created.json()
    assert set(sub) == {
        "id",
        "agent_id",
        "url",
        "events",
        "enabled",
        "secret_version",
        "created_at",
        "updated_at",
    }
    assert sub["id"].startswith("whsub_") and sub["enabled"] is True
    assert sub["secret_version"] == 1 and sub["events"] == body["events"]
    other = (
        await rest.post(
            "/v1/webhook-subscriptions",
            json={
                "url": "http://a.example.org/x",
                "events": ["session.started"],
                "secret": SECRET,
                "enabled": False,
            },
        )
    ).json()

    listed = (await rest.get("/v1/webhook-subscriptions")).json()
    assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]  # disabled left out
    everything = (await rest.get("/v1/webhook-subscriptions?include_disabled=true")).json()
    assert [s["id"] for s in everything["subscriptions"]] == [other["id"], sub["id"]]
    assert everything["has_more"] is False
    assert everything["response_metadata"] == {"next_cursor": ""}
    assert SECRET not in json.dumps(everything)

    patched = await rest.patch(
        f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": False, "secret": ROTATED}
    )
    assert patched.json()["enabled"] is False and patched.json()["secret_version"] == 2
    assert (await rest.get(f"/v1/webhook-subscriptions/{sub['id']}")).json()["enabled"] is False

    bad = [
        ({"events": ["session.completed"], "secret": SECRET}, "url"),
        ({**body, "url": "ftp://hooks.example.com"}, "url"),
        ({**body, "url": "https://evil.example.net/x"}, "url"),
        ({**body, "url": "http://127.0.0.1:9/x"}, "url"),
        ({**body, "events": []}, "events"),
        ({**body, "events": ["session.completed", "session.completed"]}, "events"),
        ({**body, "events": ["session.exploded"]}, "events"),
        ({**body, "secret": "short"}, "secret"),
    ]
    for payload, param in bad:
        resp = await rest.post("/v1/webhook-subscriptions", json=payload)
        assert resp.status_code == 422 and resp.json()["param"] == param, (payload, resp.text)
        assert resp.json()["code"] == "validation_error"

    assert (await rest.delete(f"/v1/webhook-subscriptions/{sub['id']}")).status_code == 204
    gone = await rest.get(f"/v1/webhook-subscriptions/{sub['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert (await rest.delete(f"/v1/webhook-subscriptions/{sub['id']}")).status_code == 404

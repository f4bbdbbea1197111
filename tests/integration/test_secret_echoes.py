"""§6.1: pre-connect request header values are secrets, echoed nowhere.

A client (or a stored agent) gives ``pre_connect_requests[].http.headers`` with credentials in
them. Through the real server, with its real SQLite file, the values must not come back in
``session.updated`` / ``session.ready``, in any REST response (session list, detail, timeline,
agent record), in the rows the server stored, or in any log line it wrote, debug included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from vocalis.server.background import background_server

LIST_SECRET = "Bearer pre-connect-list-secret-4f2a"
DICT_SECRET = "dict-form-secret-9c1d"
LATER_SECRET = "later-update-secret-77e0"
AGENT_SECRET = "agent-pre-connect-secret-31bb"
SECRETS = (LIST_SECRET, DICT_SECRET, LATER_SECRET, AGENT_SECRET)


def pre_connect(url: str, headers: Any) -> dict[str, Any]:
    return {
        "http": {"url": url, "http_method": "POST", "headers": headers},
        "sends": ["caller_number"],
        "returns": [{"name": "first_name"}],
        "timeout_ms": 500,
    }


async def converse(url: str, first: dict[str, Any], later: dict[str, Any] | None) -> list[Any]:
    events: list[Any] = []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": first}))
        if later is not None:
            await ws.send(json.dumps({"type": "session.update", "session": later}))
        await ws.send(json.dumps({"type": "session.end"}))
        async for raw in ws:
            events.append(json.loads(raw))
    return events


def wait_completed(http: str, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        record: dict[str, Any] = httpx.get(f"{http}/v1/sessions/{session_id}").json()
        if record.get("status") == "completed" and record.get("artifacts"):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.05)


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def test_pre_connect_header_values_appear_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = "https://lookup.example.com/pre-connect"
    first = {
        "system_prompt": "Be brief.",
        "pre_connect_requests": [
            pre_connect(hook, [{"name": "Authorization", "value": LIST_SECRET}]),
            pre_connect(hook, {"X-Api-Key": DICT_SECRET}),
        ],
    }
    later = {
        "pre_connect_requests": [pre_connect(hook, [{"name": "X-Later", "value": LATER_SECRET}])]
    }
    agent_body = {
        "name": "Front desk",
        "system_prompt": "You greet callers.",
        "voice": {"voice_id": "ivy"},
        "pre_connect_requests": [pre_connect(hook, [{"name": "X-Agent", "value": AGENT_SECRET}])],
    }
    with background_server(providers="fake", data_dir=str(tmp_path)) as (url, _):
        http = url.replace("ws://", "http://").removesuffix("/v1/ws")

        inline = asyncio.run(converse(url, first, later))
        updated = [e for e in inline if e["type"] == "session.updated"]
        ready = next(e for e in inline if e["type"] == "session.ready")
        assert len(updated) == 2  # the first update and the later one were both applied
        echoed = ready["config"]["pre_connect_requests"]
        assert [p["http"]["headers"] for p in echoed] == [
            [{"name": "Authorization"}],
            [{"name": "X-Api-Key"}],
        ]
        assert echoed[0]["http"]["url"] == hook and echoed[0]["timeout_ms"] == 500
        assert updated[-1]["config"]["pre_connect_requests"][0]["http"]["headers"] == [
            {"name": "X-Later"}
        ]
        assert_no_secret("WebSocket events", json.dumps(inline))

        created = httpx.post(f"{http}/v1/agents", json=agent_body)
        assert created.status_code == 201, created.text
        agent = created.json()
        assert agent["pre_connect_requests"][0]["http"]["headers"] == [{"name": "X-Agent"}]
        agent_events = asyncio.run(converse(url, {"agent_id": agent["id"]}, None))
        agent_ready = next(e for e in agent_events if e["type"] == "session.ready")
        assert agent_ready["config"]["pre_connect_requests"][0]["http"]["headers"] == [
            {"name": "X-Agent"}
        ]
        assert_no_secret("stored-agent session events", json.dumps(agent_events))
        assert_no_secret("agent record", httpx.get(f"{http}/v1/agents/{agent['id']}").text)
        assert_no_secret("agent list", httpx.get(f"{http}/v1/agents").text)
        # A PUT that leaves pre_connect_requests out keeps them (and still shows no value).
        put = httpx.put(f"{http}/v1/agents/{agent['id']}", json={"greeting": "Hello."})
        assert (
            put.status_code == 200
            and put.json()["pre_connect_requests"] == (agent["pre_connect_requests"])
        )

        for session_id in (ready["session_id"], agent_ready["session_id"]):
            detail = wait_completed(http, session_id)
            assert_no_secret("session detail", json.dumps(detail))
            for artifact in detail["artifacts"]:
                body = httpx.get(artifact["url"])
                assert body.status_code == 200
                assert_no_secret(f"{artifact['type']} artifact", body.text)
        timeline = httpx.get(
            next(
                a["url"]
                for a in wait_completed(http, ready["session_id"])["artifacts"]
                if a["type"] == "timeline"
            )
        ).json()
        changes = [c["update"] for c in timeline["config_changes"]]
        assert any("pre_connect_requests" in c for c in changes)  # the changes are there …
        assert_no_secret("session list", httpx.get(f"{http}/v1/sessions").text)

    # … and so is nothing secret in what the server wrote to disk or said in its logs.
    with sqlite3.connect(tmp_path / "vocalis.db") as db:
        for table in ("sessions", "artifacts", "agents"):
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert rows, table
            assert_no_secret(f"the {table} table", repr(rows))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "no log line captured"
    assert_no_secret("logs", logged)

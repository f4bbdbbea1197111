"""REST API of §17 over real storage, on SQLite (a file in tmp_path) and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.integration.postgres_fixture import BACKENDS, database_url_for
from vocalis.server.rest.standalone import build_app
from vocalis.session.hooks import SessionRecord
from vocalis.settings import Settings
from vocalis.storage import Storage

KEY = "key-one"
AUTH = {"Authorization": f"Bearer {KEY}"}
ID_RE = re.compile(r"^req_[0-9a-f]{32}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ERROR_KEYS = {"code", "message", "param", "request_id", "errors", "detail"}


@dataclass
class StubManager:
    records: list[SessionRecord] = field(default_factory=list)

    def live_records(self) -> list[SessionRecord]:
        return list(self.records)


@dataclass
class Api:
    client: httpx.AsyncClient
    storage: Storage
    manager: StubManager
    settings: Settings
    tokens: Any

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=kw.pop("headers", AUTH), **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=kw.pop("headers", AUTH), **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.put(url, headers=kw.pop("headers", AUTH), **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=kw.pop("headers", AUTH), **kw)


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path,
        api_keys=[KEY, "key-two"],
        database_url=await database_url_for(request.param),
        secret_key="test secret",
    )
    manager = StubManager()
    app = build_app(settings, manager)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        state = app.state.vocalis
        yield Api(client, state.storage, manager, settings, state.tokens)


def assert_error(
    resp: httpx.Response, status: int, code: str, message: str, param: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code
    assert body["message"] == message
    assert body["detail"] == message
    assert body["param"] == param
    assert body["request_id"] == resp.headers["x-request-id"]
    assert ID_RE.match(body["request_id"])
    return body


def agent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Support",
        "system_prompt": "You help with orders.",
        "voice": {"voice_id": "ivy"},
        "greeting": "Hi!",
        "tools": [
            {
                "name": "lookup_order",
                "description": "Look up an order.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
                "http": {
                    "url": "https://api.example.com/orders",
                    "http_method": "GET",
                    "headers": [
                        {"name": "Authorization", "value": "Bearer SECRET-HEADER-1"},
                        {"name": "X-Tenant", "value": "tenant-7"},
                    ],
                },
            },
            {"name": "client_side", "description": "A client tool."},
        ],
        "llm": [
            {"base_url": "http://localhost:11434/v1", "model": "llama3.1", "api_key": "SK-LLM-1"}
        ],
    }
    body.update(overrides)
    return body


async def create_agent(api: Api, **overrides: Any) -> dict[str, Any]:
    resp = await api.post("/v1/agents", json=agent_body(**overrides))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def agent_count(api: Api) -> int:
    return await api.storage.agents.count()


def header_values(spec_session: dict[str, Any], tool_name: str) -> dict[str, str]:
    tool = next(t for t in spec_session["tools"] if t["name"] == tool_name)
    return {h["name"]: h["value"] for h in tool["http"]["headers"]}


# ------------------------------------------------------------------------------------- tokens
async def test_get_token_mints_a_redeemable_token(api: Api) -> None:
    resp = await api.get("/v1/token?expires_in_seconds=300&max_session_duration_seconds=3600")
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in_seconds"] == 300
    assert api.tokens.redeem(body["token"]) == 3600
    assert api.tokens.redeem(body["token"]) is None  # single use


async def test_get_token_defaults_cap_to_server_maximum_and_ignores_other_params(api: Api) -> None:
    resp = await api.get("/v1/token?expires_in_seconds=5&foo=bar")
    assert resp.status_code == 200
    assert api.tokens.redeem(resp.json()["token"]) == 10800


@pytest.mark.parametrize(
    ("query", "param", "problem"),
    [
        ("", "expires_in_seconds", "Field required"),
        (
            "expires_in_seconds=601",
            "expires_in_seconds",
            "Input should be less than or equal to 600",
        ),
        (
            "expires_in_seconds=0",
            "expires_in_seconds",
            "Input should be greater than or equal to 1",
        ),
        ("expires_in_seconds=abc", "expires_in_seconds", "Input should be a valid integer"),
        ("expires_in_seconds=1.5", "expires_in_seconds", "Input should be a valid integer"),
        (
            "expires_in_seconds=60&max_session_duration_seconds=59",
            "max_session_duration_seconds",
            "Input should be greater than or equal to 60",
        ),
        (
            "expires_in_seconds=60&max_session_duration_seconds=10801",
            "max_session_duration_seconds",
            "Input should be less than or equal to 10800",
        ),
    ],
)
async def test_get_token_validation_errors(api: Api, query: str, param: str, problem: str) -> None:
    resp = await api.get(f"/v1/token?{query}")
    body = assert_error(resp, 422, "validation_error", f"{param}: {problem}", param)
    assert body["errors"] == [{"message": problem, "param": param}]


async def test_post_tokens_without_body_uses_defaults(api: Api) -> None:
    before = time.time()
    resp = await api.post("/v1/tokens")
    assert resp.status_code == 200
    body = resp.json()
    assert ISO_RE.match(body["expires_at"])
    assert api.tokens.redeem(body["token"]) == 10800
    expires = time.mktime(time.strptime(body["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    expires -= time.timezone
    assert before + 50 <= expires <= before + 70


async def test_post_tokens_reports_every_problem(api: Api) -> None:
    resp = await api.post(
        "/v1/tokens",
        json={"expires_in_seconds": 601, "max_session_duration_seconds": "x", "other": 1},
    )
    body = assert_error(
        resp,
        422,
        "validation_error",
        "expires_in_seconds: Input should be less than or equal to 600",
        "expires_in_seconds",
    )
    assert body["errors"] == [
        {"message": "Input should be less than or equal to 600", "param": "expires_in_seconds"},
        {"message": "Input should be a valid integer", "param": "max_session_duration_seconds"},
    ]


# --------------------------------------------------------------------------------------- auth
async def test_auth_errors_and_credential_forms(api: Api) -> None:
    assert_error(
        await api.get("/v1/voices", headers={}), 401, "unauthorized", "Missing authorization header"
    )
    assert_error(
        await api.get("/v1/voices", headers={"Authorization": "Bearer nope"}),
        401,
        "unauthorized",
        "Unauthorized",
    )
    assert (await api.get("/v1/voices", headers={"Authorization": "key-two"})).status_code == 200
    assert (
        await api.get("/v1/voices", headers={"authorization": "bearer key-two"})
    ).status_code == 200
    token = (await api.post("/v1/tokens")).json()["token"]
    temp = {"Authorization": f"Bearer {token}"}
    assert_error(await api.get("/v1/agents", headers=temp), 401, "unauthorized", "Unauthorized")


async def test_open_mode_needs_no_credential(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path), StubManager())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/v1/agents")).status_code == 200
        bad = {"Authorization": "Bearer whatever"}
        assert (await client.get("/v1/voices", headers=bad)).status_code == 200
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------------------------- agents
async def test_create_returns_the_record_without_secrets(api: Api) -> None:
    resp = await api.post("/v1/agents", json=agent_body())
    assert resp.status_code == 201
    assert ID_RE.match(resp.headers["x-request-id"])
    record = resp.json()
    assert set(record) == {
        "id",
        "name",
        "system_prompt",
        "greeting",
        "tools",
        "pre_connect_requests",
        "voice",
        "input",
        "output",
        "transfer_targets",
        "outbound_trunk_id",
        "caller_id",
        "llm",
        "created_at",
        "updated_at",
    }
    assert re.match(r"^agent_[0-9a-f]{32}$", record["id"])
    assert record["voice"] == {"voice_id": "ivy"}
    assert record["output"]["voice"] == "ivy"
    assert record["input"]["format"] == {"encoding": "audio/pcm", "sample_rate": 24000}
    assert record["created_at"] == record["updated_at"]
    assert ISO_RE.match(record["created_at"])
    assert record["llm"] == [
        {"base_url": "http://localhost:11434/v1", "model": "llama3.1", "reasoning_effort": None}
    ]
    http_tool, client_tool = record["tools"]
    assert re.match(r"^tool_[0-9a-f]{32}$", http_tool["id"])
    assert http_tool["http"]["url"] == "https://api.example.com/orders"
    assert http_tool["http"]["http_method"] == "GET"
    assert [set(h) for h in http_tool["http"]["headers"]] == [{"name", "last_set_at"}] * 2
    assert client_tool["http"] is None
    assert "SECRET-HEADER-1" not in resp.text and "SK-LLM-1" not in resp.text
    assert (await api.get(f"/v1/agents/{record['id']}")).json() == record


async def test_secrets_are_encrypted_at_rest(api: Api) -> None:
    await create_agent(api)
    async with api.storage.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT document, secrets FROM agents"))).all()
    dump = json.dumps([list(r) for r in rows])
    assert "SECRET-HEADER-1" not in dump and "SK-LLM-1" not in dump
    if api.settings.database_url is None:
        await api.storage.engine.dispose()  # checkpoint nothing pending: read the files raw
        raw = b"".join(p.read_bytes() for p in api.settings.data_dir.glob("vocalis.db*"))
        assert b"SECRET-HEADER-1" not in raw and b"SK-LLM-1" not in raw


async def test_lookup_gives_a_session_object_with_secrets(api: Api) -> None:
    record = await create_agent(api)
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None
    assert spec.agent_id == record["id"]
    assert spec.session["system_prompt"] == "You help with orders."
    assert spec.session["greeting"] == "Hi!"
    assert spec.session["output"]["voice"] == "ivy"
    assert header_values(spec.session, "lookup_order") == {
        "Authorization": "Bearer SECRET-HEADER-1",
        "X-Tenant": "tenant-7",
    }
    assert spec.llm[0].api_key == "SK-LLM-1"
    assert await api.storage.agent_lookup("agent_" + "0" * 32) is None
    assert await api.storage.agent_lookup("../etc/passwd") is None


async def test_list_is_newest_first_with_cursor_pages(api: Api) -> None:
    ids = [(await create_agent(api, name=f"a{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = ""
    for _ in range(3):
        resp = await api.get(f"/v1/agents?limit=2&cursor={cursor}")
        body = resp.json()
        seen += [a["id"] for a in body["agents"]]
        assert all(set(a) == {"id", "name", "created_at", "updated_at"} for a in body["agents"])
        cursor = body["response_metadata"]["next_cursor"]
        assert body["has_more"] == bool(cursor)
    assert seen == list(reversed(ids))
    assert cursor == ""
    default = (await api.get("/v1/agents")).json()
    assert len(default["agents"]) == 5 and default["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param", "problem"),
    [
        ("limit=0", "limit", "Input should be greater than or equal to 1"),
        ("limit=201", "limit", "Input should be less than or equal to 200"),
        ("limit=x", "limit", "Input should be a valid integer"),
        ("cursor=%27%3B--", "cursor", "Invalid cursor"),
    ],
)
async def test_list_query_errors(api: Api, query: str, param: str, problem: str) -> None:
    assert_error(
        await api.get(f"/v1/agents?{query}"), 422, "validation_error", f"{param}: {problem}", param
    )


async def test_put_keeps_absent_fields_and_secrets(api: Api) -> None:
    record = await create_agent(api)
    resp = await api.put(f"/v1/agents/{record['id']}", json={"name": "Renamed"})
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["name"] == "Renamed"
    assert updated["tools"] == record["tools"]
    assert updated["created_at"] == record["created_at"]
    assert updated["updated_at"] > record["updated_at"]
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None
    assert header_values(spec.session, "lookup_order")["Authorization"] == "Bearer SECRET-HEADER-1"
    assert spec.llm[0].api_key == "SK-LLM-1"


async def test_put_tools_match_by_id_then_name_and_merge_headers(api: Api) -> None:
    record = await create_agent(api)
    http_tool, client_tool = record["tools"]
    old_auth, old_tenant = http_tool["http"]["headers"]
    tools = [
        {  # renamed, matched by id; header with only a name keeps its value; remove drops
            "id": http_tool["id"],
            "name": "find_order",
            "http": {
                "url": "https://api.example.com/v2/orders",
                "headers": [
                    {"name": "Authorization"},
                    {"name": "X-Tenant", "remove": True},
                    {"name": "X-New", "value": "fresh"},
                ],
            },
        },
        {"name": "client_side", "description": "changed"},  # matched by name
        {"name": "brand_new"},
    ]
    resp = await api.put(f"/v1/agents/{record['id']}", json={"tools": tools})
    assert resp.status_code == 200, resp.text
    new_http, new_client, new_tool = resp.json()["tools"]
    assert new_http["id"] == http_tool["id"] and new_http["name"] == "find_order"
    assert new_http["http"]["http_method"] == "POST"
    assert new_http["http"]["headers"][0] == old_auth
    assert [h["name"] for h in new_http["http"]["headers"]] == ["Authorization", "X-New"]
    assert new_http["http"]["headers"][1]["last_set_at"] > old_tenant["last_set_at"]
    assert new_client["id"] == client_tool["id"] and new_client["description"] == "changed"
    assert new_tool["id"] not in (http_tool["id"], client_tool["id"])
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None
    assert header_values(spec.session, "find_order") == {
        "Authorization": "Bearer SECRET-HEADER-1",
        "X-New": "fresh",
    }


async def test_put_header_value_replaces_secret(api: Api) -> None:
    record = await create_agent(api)
    tool = record["tools"][0]
    tool["http"]["headers"] = [{"name": "Authorization", "value": "Bearer ROTATED"}]
    resp = await api.put(f"/v1/agents/{record['id']}", json={"tools": [tool]})
    assert resp.status_code == 200, resp.text
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None
    assert header_values(spec.session, "lookup_order") == {"Authorization": "Bearer ROTATED"}


async def test_put_llm_key_kept_when_absent_and_empty_list_reverts(api: Api) -> None:
    record = await create_agent(api)
    url = f"/v1/agents/{record['id']}"
    new_llm = [{"base_url": "http://llm:8080/v1/", "model": "m2", "reasoning_effort": "low"}]
    resp = await api.put(url, json={"llm": new_llm})
    assert resp.json()["llm"] == [
        {"base_url": "http://llm:8080/v1/", "model": "m2", "reasoning_effort": "low"}
    ]
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None and spec.llm[0].api_key == "SK-LLM-1"
    resp = await api.put(url, json={"llm": []})
    assert resp.json()["llm"] == []
    spec = await api.storage.agent_lookup(record["id"])
    assert spec is not None and spec.llm == ()


async def test_put_invalid_body_changes_nothing(api: Api) -> None:
    record = await create_agent(api)
    url = f"/v1/agents/{record['id']}"
    assert_error(
        await api.put(url, json={"name": "ok", "output": {"volume": 101}}),
        422,
        "validation_error",
        "output.volume: 'output.volume' must be between 0 and 100",
        "output.volume",
    )
    assert (await api.get(url)).json() == record


async def test_delete_then_get_is_agent_not_found(api: Api) -> None:
    record = await create_agent(api)
    url = f"/v1/agents/{record['id']}"
    resp = await api.delete(url)
    assert resp.status_code == 204 and resp.content == b""
    assert_error(await api.get(url), 404, "agent_not_found", "Agent not found", "agent_id")
    assert_error(await api.delete(url), 404, "agent_not_found", "Agent not found", "agent_id")
    assert_error(
        await api.put(url, json={"name": "x"}),
        404,
        "agent_not_found",
        "Agent not found",
        "agent_id",
    )


async def test_plain_string_voice_and_unknown_fields_ignored(api: Api) -> None:
    body = agent_body(voice="claire", tools=[], llm=[], surprise={"x": 1})
    body["output"] = {"voice": "ignored", "volume": 50, "unknown": True}
    resp = await api.post("/v1/agents", json=body)
    assert resp.status_code == 201, resp.text
    record = resp.json()
    assert record["voice"] == {"voice_id": "claire"}
    assert record["output"]["voice"] == "claire" and record["output"]["volume"] == 50
    assert "surprise" not in record


@pytest.mark.parametrize(
    ("change", "message", "param"),
    [
        ({"name": None}, "name: Field required", "name"),
        ({"name": ""}, "name: String should have at least 1 character", "name"),
        ({"name": 5}, "name: Input should be a valid string", "name"),
        (
            {"system_prompt": ["x"]},
            "system_prompt: Input should be a valid string",
            "system_prompt",
        ),
        ({"voice": {"voice_id": "zzz"}}, "voice: Invalid voice 'zzz'. Must be one of: ", "voice"),
        ({"voice": {}}, "voice.voice_id: Field required", "voice.voice_id"),
        (
            {"input": {"turn_detection": {"min_silence": 20000}}},
            "input.turn_detection.min_silence: 'input.turn_detection.min_silence' must be "
            "between 0 and 10000",
            "input.turn_detection.min_silence",
        ),
        (
            {"input": {"format": {"sample_rate": "x"}}},
            "input.format.sample_rate: Input should be a valid integer",
            "input.format.sample_rate",
        ),
        (
            {"tools": [{"name": "a"}, {"name": "a"}]},
            "tools[1].name: 'tools[1].name' must be unique",
            "tools[1].name",
        ),
        ({"tools": [{"description": "x"}]}, "tools[0].name: Field required", "tools[0].name"),
        (
            {"tools": [{"name": "t", "http": {"url": "ftp://x"}}]},
            "tools[0].http.url: 'tools[0].http.url' must be an http or https URL",
            "tools[0].http.url",
        ),
        (
            {"tools": [{"name": "t", "http": {"url": "https://x", "headers": [{"name": "A"}]}}]},
            "tools[0].http.headers[0].value: Field required",
            "tools[0].http.headers[0].value",
        ),
        (
            {"llm": [{"base_url": "http://a", "model": "m", "reasoning_effort": "max"}]},
            "llm[0].reasoning_effort: Input should be 'minimal', 'low', 'medium' or 'high'",
            "llm[0].reasoning_effort",
        ),
        (
            {"llm": [{"model": "m"}, {"model": "n"}]},
            "llm: List should have at most 1 item after validation",
            "llm",
        ),
        (
            {"pre_connect_requests": [{}, {}, {}]},
            "pre_connect_requests: 'pre_connect_requests' must be at most 2 items",
            "pre_connect_requests",
        ),
    ],
)
async def test_create_validation_errors_store_nothing(
    api: Api, change: dict[str, Any], message: str, param: str
) -> None:
    body = agent_body()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    resp = await api.post("/v1/agents", json=body)
    assert resp.status_code == 422, resp.text
    got = resp.json()
    assert got["code"] == "validation_error" and got["param"] == param
    assert got["message"].startswith(message)
    assert got["errors"][0]["param"] == param
    assert await agent_count(api) == 0


# ------------------------------------------------------------------------------ hostile input
async def test_body_errors(api: Api) -> None:
    assert_error(
        await api.post("/v1/agents", content=b"{nope"), 400, "invalid_request", "Invalid JSON body"
    )
    assert_error(
        await api.post("/v1/agents", content=b"\xff\xfe{"),
        400,
        "invalid_request",
        "Invalid JSON body",
    )
    assert_error(
        await api.post("/v1/agents", content=b'{"name": NaN}'),
        400,
        "invalid_request",
        "Invalid JSON body",
    )
    assert_error(
        await api.post("/v1/agents"), 422, "validation_error", "body: Field required", "body"
    )
    assert_error(
        await api.post("/v1/agents", json=[1, 2]),
        422,
        "validation_error",
        "body: Input should be a valid dictionary",
        "body",
    )
    assert_error(
        await api.post("/v1/tokens", json="x"),
        422,
        "validation_error",
        "body: Input should be a valid dictionary",
        "body",
    )
    assert await agent_count(api) == 0


async def test_body_over_one_mebibyte_is_413_declared_or_streamed(api: Api) -> None:
    huge = json.dumps(agent_body(system_prompt="x" * (1 << 20))).encode()
    assert_error(
        await api.post("/v1/agents", content=huge),
        413,
        "payload_too_large",
        "Request body too large",
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream is counted
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    assert_error(
        await api.post("/v1/agents", content=chunks()),
        413,
        "payload_too_large",
        "Request body too large",
    )
    assert await agent_count(api) == 0


@pytest.mark.parametrize(
    "agent_id",
    [
        "agent_x'; DROP TABLE agents;--",
        "agent_' OR '1'='1",
        "..%2F..%2Fetc%2Fpasswd",
        "..",
        "agent_" + "A" * 32,
        "agent_" + "0" * 31,
        "%00",
    ],
)
async def test_hostile_agent_ids_are_404(api: Api, agent_id: str) -> None:
    real = await create_agent(api)
    for method in ("GET", "PUT", "DELETE"):
        resp = await api.client.request(
            method, f"/v1/agents/{agent_id}", headers=AUTH, json={"name": "x"}
        )
        assert resp.status_code == 404, resp.text
        assert resp.json()["code"] in ("agent_not_found", "not_found")
        assert set(resp.json()) == ERROR_KEYS
    assert (await api.get(f"/v1/agents/{real['id']}")).json() == real
    assert await agent_count(api) == 1


async def test_sql_metacharacters_in_values_are_stored_verbatim(api: Api) -> None:
    name = "x'); DROP TABLE agents;-- \"\\ %_"
    record = await create_agent(api, name=name, system_prompt=name)
    got = (await api.get(f"/v1/agents/{record['id']}")).json()
    assert got["name"] == name and got["system_prompt"] == name
    listed = await api.get(f"/v1/sessions?agent_id={name}")
    assert listed.status_code == 200 and listed.json()["sessions"] == []


async def test_unknown_routes_and_methods_are_not_found(api: Api) -> None:
    for method, url in [
        ("GET", "/v1/phone-numbers"),
        ("POST", "/v1/calls"),
        ("PATCH", "/v1/agents"),
        ("GET", "/nothing/here"),
    ]:
        resp = await api.client.request(method, url, headers=AUTH)
        assert_error(resp, 404, "not_found", "Not found")


async def test_unexpected_failure_is_a_500_body(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.storage.agents, "page", boom)
    resp = await api.get("/v1/agents")
    assert_error(resp, 500, "internal_error", "Internal server error")
    assert "disk on fire" not in resp.text


# ----------------------------------------------------------------------------------- sessions
def session_record(
    *, agent_id: str | None = None, status: str = "active", created_at: float | None = None
) -> SessionRecord:
    from vocalis import ids

    return SessionRecord(
        session_id=ids.session_id(),
        agent_id=agent_id,
        status=status,  # type: ignore[arg-type]
        created_at=created_at if created_at is not None else time.time(),
        config={"id": "x", "system_prompt": "p"},
    )


async def end(api: Api, record: SessionRecord, *, recording: bytes | None = None) -> None:
    record.status = "ended"
    record.ended_at = record.created_at + 12.5
    record.public_close_reason = "client_end"
    record.timeline = {"session_id": record.session_id, "turns": []}
    record.recording = recording
    await api.storage.recorder.session_ended(record)


async def test_sessions_list_merges_live_and_stored(api: Api) -> None:
    now = time.time()
    ended = session_record(agent_id="agent_" + "a" * 32, created_at=now - 30)
    await api.storage.recorder.session_changed(ended)
    await end(api, ended)
    live = session_record(created_at=now - 10)
    await api.storage.recorder.session_changed(live)  # stored as active, manager says detached
    live.status = "disconnected"
    api.manager.records = [live]

    body = (await api.get("/v1/sessions")).json()
    assert [s["id"] for s in body["sessions"]] == [live.session_id, ended.session_id]
    live_view, ended_view = body["sessions"]
    assert set(live_view) == {
        "id",
        "agent_id",
        "status",
        "public_close_reason",
        "duration_seconds",
        "created_at",
        "ended_at",
    }
    # §17.4: null while live, as the hosted service; an ended session reads "completed"
    assert live_view["status"] == "disconnected" and live_view["ended_at"] is None
    assert live_view["duration_seconds"] is None and live_view["public_close_reason"] is None
    assert ended_view["status"] == "completed" and ended_view["public_close_reason"] == "client_end"
    assert ended_view["duration_seconds"] == 12.5 and ISO_RE.match(ended_view["ended_at"])

    def ids_of(resp: httpx.Response) -> list[str]:
        return [s["id"] for s in resp.json()["sessions"]]

    assert ids_of(await api.get("/v1/sessions?status=completed")) == [ended.session_id]
    assert ids_of(await api.get("/v1/sessions?status=ended")) == [ended.session_id]  # alias
    assert ids_of(await api.get("/v1/sessions?status=disconnected")) == [live.session_id]
    assert ids_of(await api.get("/v1/sessions?status=active")) == []
    assert ids_of(await api.get(f"/v1/sessions?agent_id={ended.agent_id}")) == [ended.session_id]
    page1 = (await api.get("/v1/sessions?limit=1")).json()
    assert page1["has_more"] is True
    cursor = page1["response_metadata"]["next_cursor"]
    page2 = (await api.get(f"/v1/sessions?limit=1&cursor={cursor}")).json()
    assert [s["id"] for s in page2["sessions"]] == [ended.session_id]
    assert page2["has_more"] is False
    assert_error(
        await api.get("/v1/sessions?status=gone"),
        422,
        "validation_error",
        "status: Input should be 'active', 'disconnected', 'completed' or 'ended'",
        "status",
    )


async def test_session_detail_artifacts_are_signed_and_fetchable(api: Api) -> None:
    record = session_record()
    await api.storage.recorder.session_changed(record)
    api.manager.records = [record]
    live = (await api.get(f"/v1/sessions/{record.session_id}")).json()
    assert live["artifacts"] == [] and live["config"] == record.config
    assert live["status"] == "active"
    assert live["duration_seconds"] is None and live["ended_at"] is None
    api.manager.records = []
    wav = b"RIFF" + b"\0" * 40
    await end(api, record, recording=wav)

    detail = (await api.get(f"/v1/sessions/{record.session_id}")).json()
    assert detail["status"] == "completed" and detail["config"] == record.config
    assert detail["duration_seconds"] == 12.5 and ISO_RE.match(detail["ended_at"])
    kinds = {a["type"]: a for a in detail["artifacts"]}
    assert kinds["timeline"]["content_type"] == "application/json"
    assert kinds["audio"]["content_type"] == "audio/wav"
    url = kinds["timeline"]["url"]
    assert url.startswith(f"http://testserver/v1/sessions/{record.session_id}/artifacts/timeline?")
    resp = await api.client.get(url)  # no Authorization
    assert resp.status_code == 200
    assert resp.json() == {"session_id": record.session_id, "turns": []}
    audio = await api.client.get(kinds["audio"]["url"])
    assert audio.status_code == 200 and audio.content == wav
    assert audio.headers["content-type"] == "audio/wav"

    tampered = url.replace("sig=", "sig=0")
    assert_error(await api.client.get(tampered), 401, "unauthorized", "Unauthorized")
    expired = re.sub(r"expires=\d+", "expires=1000", url)
    assert_error(await api.client.get(expired), 401, "unauthorized", "Unauthorized")
    other = url.replace("/timeline?", "/audio?")  # a signature is for one artifact only
    assert_error(await api.client.get(other), 401, "unauthorized", "Unauthorized")


async def test_public_base_url_is_used_for_artifact_urls(api: Api) -> None:
    api.settings.public_base_url = "https://voice.example.com/"
    record = session_record()
    await end(api, record)
    detail = (await api.get(f"/v1/sessions/{record.session_id}")).json()
    assert detail["artifacts"][0]["url"].startswith(
        f"https://voice.example.com/v1/sessions/{record.session_id}/artifacts/timeline?expires="
    )


async def test_delete_session_rules(api: Api) -> None:
    record = session_record()
    await api.storage.recorder.session_changed(record)
    api.manager.records = [record]
    url = f"/v1/sessions/{record.session_id}"
    assert_error(
        await api.delete(url),
        409,
        "session_active",
        "Session is still active; end it before deleting",
        "session_id",
    )
    api.manager.records = []
    await end(api, record, recording=b"RIFFdata")
    wav_files = list((api.settings.data_dir / "recordings").glob("*.wav"))
    # SQLite (one node): the recording is a file; PostgreSQL (a fleet): a row every node reads
    assert len(wav_files) == (1 if api.settings.database_url is None else 0)
    assert (await api.delete(url)).status_code == 204
    assert not any(f.exists() for f in wav_files)
    assert_error(await api.get(url), 404, "session_not_found", "Session not found", "session_id")
    assert_error(await api.delete(url), 404, "session_not_found", "Session not found", "session_id")
    for bad in ("sess_x'; DROP TABLE sessions;--", "sess_" + "0" * 32):
        assert_error(
            await api.get(f"/v1/sessions/{bad}"),
            404,
            "session_not_found",
            "Session not found",
            "session_id",
        )


async def test_late_session_changed_never_revives_an_ended_record(api: Api) -> None:
    record = session_record()
    await end(api, record)
    record.status = "active"
    await api.storage.recorder.session_changed(record)
    stored = await api.storage.sessions.get(record.session_id)
    assert stored is not None and stored.status == "ended"


async def test_retention_purges_old_ended_sessions(api: Api) -> None:
    old = session_record(created_at=time.time() - 40 * 86400)
    await end(api, old, recording=b"RIFF")
    recent = session_record()
    await end(api, recent)
    assert await api.storage.purge_expired() == 1
    assert await api.storage.sessions.get(old.session_id) is None
    assert await api.storage.sessions.get(recent.session_id) is not None
    assert list((api.settings.data_dir / "recordings").glob("*.wav")) == []


# ------------------------------------------------------------------------------------ openapi
async def test_openapi_lists_the_contract_routes(api: Api) -> None:
    if api.settings.database_url is not None:
        pytest.skip("schema does not depend on the backend")
    resp = await api.client.get("/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    expected = {
        "/v1/token": {"get"},
        "/v1/tokens": {"post"},
        "/v1/agents": {"get", "post"},
        "/v1/agents/{agent_id}": {"get", "put", "delete"},
        "/v1/sessions": {"get"},
        "/v1/sessions/{session_id}": {"get", "delete"},
        "/v1/voices": {"get"},
        "/v1/webhook-subscriptions": {"get", "post"},
        "/v1/webhook-subscriptions/{subscription_id}": {"get", "patch", "delete"},
        "/v1/sessions/{session_id}/webhook-deliveries": {"get"},
        "/v1/sessions/{session_id}/webhook-deliveries/latest": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    schema = paths["/v1/agents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"name", "system_prompt", "voice"} <= set(schema["required"])


async def test_every_response_has_a_request_id(api: Api) -> None:
    for resp in [
        await api.get("/v1/voices"),
        await api.get("/v1/nothing"),
        await api.get("/v1/voices", headers={}),
        await api.client.get("/openapi.json"),
    ]:
        assert ID_RE.match(resp.headers["x-request-id"])
    a, b = await api.get("/v1/voices"), await api.get("/v1/voices")
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


async def test_voices_catalog(api: Api) -> None:
    body = (await api.get("/v1/voices")).json()
    assert body["default_voice_id"] == "ivy"
    ivy = next(v for v in body["voices"] if v["voice_id"] == "ivy")
    assert ivy == {
        "voice_id": "ivy",
        "name": "Ivy",
        "language": "en",
        "description": "English (US)",
        "default": True,
    }
    assert sum(v["default"] for v in body["voices"]) == 1

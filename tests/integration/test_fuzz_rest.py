"""Fuzzing the REST API (§17) through the real routes over SQLite (issue #13).

Every request, valid or not, gets a 2xx or one of the error statuses of §17.1 with the common
error body (``code`` of that status, ``detail`` = ``message``, ``request_id`` = the
``X-Request-Id`` header); never a 5xx, never an ERROR record in the logs. Requests the contract
says are valid get a 2xx.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import (
    ANY_STRING,
    CASES,
    JSON,
    NEAR_PATHS,
    NUMBERS,
    ODD_TEXT,
    VOICE_IDS,
    examples,
    valid_session,
)
from tests.integration.test_fuzz_ws import ErrorLog, error_log  # noqa: F401  (fixture)
from vocalis.server.rest.standalone import build_app
from vocalis.settings import Settings

pytestmark = pytest.mark.fuzz

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_KEYS = {"code", "message", "param", "request_id", "errors", "detail"}
REQ_ID = re.compile(r"^req_[0-9a-f]{32}$")
STATUS_CODES: dict[int, set[str]] = {
    400: {"invalid_request"},
    401: {"unauthorized"},
    404: {"agent_not_found", "session_not_found", "not_found"},
    405: {"not_found", "method_not_allowed", "invalid_request"},
    409: {"session_active"},
    413: {"payload_too_large"},
    422: {"validation_error"},
}


@pytest.fixture
def rest(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, api_keys=[KEY], secret_key="fuzz secret")
    with TestClient(build_app(settings)) as client:
        yield client


def check_response(resp: Any, valid: bool, what: str) -> None:
    CASES.add("rest requests")
    assert resp.status_code < 500, (what, resp.status_code, resp.text[:500])
    assert REQ_ID.match(resp.headers.get("x-request-id", "")), (what, dict(resp.headers))
    if resp.status_code < 300:
        return
    assert not valid, (what, resp.status_code, resp.text[:500])
    body = resp.json()
    assert set(body) == ERROR_KEYS, (what, body)
    assert body["code"] in STATUS_CODES.get(resp.status_code, set()), (what, resp.status_code, body)
    assert isinstance(body["message"], str) and body["message"], body
    assert body["detail"] == body["message"], body
    assert body["request_id"] == resp.headers["x-request-id"]
    assert body["param"] is None or isinstance(body["param"], str), body
    assert body["errors"] is None or all(set(e) == {"message", "param"} for e in body["errors"]), (
        body
    )


# ------------------------------------------------------------------------------ bodies
@st.composite
def agent_bodies(draw: st.DrawFn) -> tuple[Any, bool]:
    """(body, valid): a stored agent of §17.3, valid or with one thing wrong."""
    session = copy.deepcopy(draw(valid_session(first=True)))  # mutated below
    body: dict[str, Any] = {
        "name": draw(st.text(min_size=1, max_size=256).filter(lambda t: t.strip() == t or True)),
        "system_prompt": draw(ODD_TEXT),
        "voice": draw(
            st.one_of(
                st.sampled_from(VOICE_IDS).map(lambda v: {"voice_id": v}),
                st.sampled_from(VOICE_IDS),
            )
        ),
    }
    for key in ("greeting", "input", "tools", "pre_connect_requests"):
        if key in session:
            body[key] = session[key]
    if draw(st.booleans()):
        body["llm"] = [{"base_url": "http://127.0.0.1:9/v1", "model": draw(ODD_TEXT.filter(bool))}]
    if draw(st.booleans()):
        body["transfer_targets"] = draw(st.lists(JSON, max_size=2))
    flavour = draw(st.sampled_from(["valid", "near", "near", "garbage"]))
    if flavour == "valid":
        return body, not _has_surrogates(body)
    if flavour == "garbage":
        return draw(st.one_of(JSON, st.lists(JSON), SCALARS_BODY)), False
    kind = draw(st.sampled_from(["drop", "retype", "path", "http", "voice"]))
    if kind == "drop":
        body.pop(draw(st.sampled_from(["name", "system_prompt", "voice"])))
    elif kind == "retype":
        body[draw(st.sampled_from(sorted(body)))] = draw(st.one_of(NUMBERS, st.booleans(), JSON))
    elif kind == "voice":
        body["voice"] = draw(st.one_of(ANY_STRING, JSON, st.just({"voice_id": "nobody"})))
    elif kind == "http":
        body["tools"] = [
            {
                "name": "t",
                "http": draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "url": st.one_of(ANY_STRING, st.just("https://example.com")),
                            "http_method": ANY_STRING,
                            "headers": st.lists(JSON, max_size=3),
                        },
                    )
                ),
            }
        ]
    else:
        path, values = draw(st.sampled_from(NEAR_PATHS))
        if path[0] not in ("agent_id", "webhook", "turn_detection", "output", "llm"):
            node = body
            for key in path[:-1]:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
            node[path[-1]] = draw(values)
    return body, False


SCALARS_BODY = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_STRING)


def _has_surrogates(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


QUERY_VALUES = st.one_of(
    ANY_STRING.map(lambda s: s[:200]), NUMBERS.map(str), st.sampled_from(["", "1", "200", "201"])
)
LIMITS = st.one_of(st.integers(1, 200).map(str), QUERY_VALUES)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], bool]:
    """(method, url, httpx keyword arguments, valid)."""
    route = draw(
        st.sampled_from(
            [
                "post-agent",
                "put-agent",
                "list-agents",
                "list-sessions",
                "session",
                "token",
                "tokens",
                "raw",
            ]
        )
    )
    if route == "post-agent":
        body, valid = draw(agent_bodies())
        return "POST", "/v1/agents", {"json": body}, valid
    if route == "put-agent":
        body, _ = draw(agent_bodies())
        if isinstance(body, dict) and draw(st.booleans()):
            body = {k: v for k, v in body.items() if draw(st.booleans())}
        return "PUT", "/v1/agents/{agent}", {"json": body}, False
    if route == "list-agents":
        params = draw(st.fixed_dictionaries({}, optional={"limit": LIMITS}))
        if draw(st.integers(0, 4)) == 0:
            params["cursor"] = draw(QUERY_VALUES)
        valid = "cursor" not in params and _limit_ok(params.get("limit"))
        return "GET", "/v1/agents", {"params": params}, valid
    if route == "list-sessions":
        params = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": st.one_of(
                        st.sampled_from(["active", "disconnected", "completed", "ended"]),
                        QUERY_VALUES,
                    ),
                    "agent_id": QUERY_VALUES,
                    "limit": LIMITS,
                },
            )
        )
        if draw(st.integers(0, 4)) == 0:
            params["cursor"] = draw(QUERY_VALUES)
        valid = (
            "cursor" not in params
            and _limit_ok(params.get("limit"))
            and params.get("status", "active") in ("active", "disconnected", "completed", "ended")
        )
        return "GET", "/v1/sessions", {"params": params}, valid
    if route == "session":
        method = draw(st.sampled_from(["GET", "DELETE"]))
        sid = draw(st.one_of(st.just("sess_" + "0" * 32), ODD_TEXT.filter(lambda t: "/" not in t)))
        return method, "/v1/sessions/" + _quote(sid), {}, False
    if route == "token":
        params = draw(
            st.fixed_dictionaries(
                {"expires_in_seconds": st.one_of(st.integers(1, 600).map(str), QUERY_VALUES)},
                optional={
                    "max_session_duration_seconds": st.one_of(
                        st.integers(60, 10800).map(str), QUERY_VALUES
                    )
                },
            )
        )
        valid = _int_in(params["expires_in_seconds"], 1, 600) and (
            "max_session_duration_seconds" not in params
            or _int_in(params["max_session_duration_seconds"], 60, 10800)
        )
        return "GET", "/v1/token", {"params": params}, valid
    if route == "tokens":
        body = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "expires_in_seconds": st.integers(1, 600),
                        "max_session_duration_seconds": st.integers(60, 10800),
                    },
                ),
                JSON,
            )
        )
        valid = (
            isinstance(body, dict)
            and set(body) <= {"expires_in_seconds", "max_session_duration_seconds"}
            and all(isinstance(v, int) for v in body.values())
        )
        return "POST", "/v1/tokens", {"json": body}, valid
    method = draw(st.sampled_from(["POST", "PUT"]))
    url = draw(st.sampled_from(["/v1/agents", "/v1/tokens", "/v1/agents/{agent}"]))
    content = draw(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"{", b"NaN", b'{"name": Infinity}', b"\xff\xfe", b"[" * 10_000]),
        )
    )
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain"]))}
    return method, url, {"content": content, "headers": headers}, False


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="") or "x"


def _int_in(value: Any, lo: int, hi: int) -> bool:
    try:
        return lo <= int(value) <= hi and str(int(value)) == value
    except (TypeError, ValueError):
        return False


def _limit_ok(value: Any) -> bool:
    return value is None or _int_in(value, 1, 200)


@examples(default=60, fuzz=4000)
@given(reqs=st.lists(requests(), min_size=1, max_size=4))
def test_fuzzed_requests_get_contract_answers(
    rest: TestClient,
    error_log: ErrorLog,  # noqa: F811
    reqs: list[tuple[str, str, dict[str, Any], bool]],
) -> None:
    error_log.records.clear()
    made = rest.post(
        "/v1/agents", headers=AUTH, json={"name": "a", "system_prompt": "p", "voice": "ivy"}
    )
    assert made.status_code == 201, made.text
    agent = made.json()["id"]
    for method, url, kwargs, valid in reqs:
        kwargs = dict(kwargs)
        kwargs["headers"] = {**AUTH, **kwargs.get("headers", {})}
        resp = rest.request(method, url.replace("{agent}", agent), **kwargs)
        check_response(resp, valid, f"{method} {url} {str(kwargs)[:300]}")
    assert not error_log.records, [r.getMessage() for r in error_log.records]


# ------------------------------------------------------------------------------ regressions
@pytest.mark.parametrize("url", ["/v1/agents", "/v1/tokens"])
def test_a_body_nested_beyond_the_parser_is_invalid_json_not_a_500(
    rest: TestClient, url: str
) -> None:
    """Found by fuzzing: ``[[[…`` 10 000 deep raised RecursionError, answered 500."""
    resp = rest.post(url, headers=AUTH, content=b"[" * 10_000)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "invalid_request"
    assert resp.json()["message"] == "Invalid JSON body"


@pytest.mark.parametrize("status", ["active", "disconnected", "completed", "ended"])
def test_every_session_status_filter_of_the_contract_is_accepted(
    rest: TestClient, status: str
) -> None:
    """Found by fuzzing: ``status=completed`` (§17.4) was a 422."""
    resp = rest.get("/v1/sessions", headers=AUTH, params={"status": status})
    assert resp.status_code == 200, resp.text

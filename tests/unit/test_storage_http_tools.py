"""HTTP tool execution (§13.7) behind the host allow-list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from vocalis.storage.http_tools import HttpxToolRunner, host_allowed

Handler = Callable[[httpx.Request], httpx.Response]


def runner(handler: Handler, allowed: list[str] | None = None, cap: int = 8192) -> HttpxToolRunner:
    return HttpxToolRunner(
        allowed if allowed is not None else ["api.example.com"],
        cap,
        transport=httpx.MockTransport(handler),
    )


async def test_get_merges_arguments_into_the_query_and_sends_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text='{"status":"shipped"}')

    run = runner(handler)
    result = await run(
        "https://api.example.com/orders?order_id=OLD&v=2",
        "GET",
        (("Authorization", "Bearer k"),),
        {"order_id": "ORD-1", "n": 3, "flag": True},
        10,
    )
    assert result == ('{"status":"shipped"}', False)
    (request,) = seen
    assert request.method == "GET"
    assert dict(request.url.params) == {"order_id": "ORD-1", "v": "2", "n": "3", "flag": "true"}
    assert request.headers["authorization"] == "Bearer k"
    assert request.content == b""
    await run.aclose()


async def test_post_sends_a_json_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, text="ok")

    run = runner(handler)
    assert await run("https://api.example.com/x", "post", (), {"a": [1, "é"]}, 10) == ("ok", False)
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"a": [1, "é"]}
    await run.aclose()


async def test_non_2xx_is_an_error_and_bodies_are_capped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, content=b"a" * 20_000)
        return httpx.Response(503, text="down")

    run = runner(handler, cap=100)
    assert await run("https://api.example.com/x", "GET", (), {}, 10) == ("HTTP 503: down", True)
    text, is_error = await run("https://api.example.com/big", "GET", (), {}, 10)
    assert (text, is_error) == ("a" * 100, False)
    await run.aclose()


async def test_invalid_utf8_is_replaced() -> None:
    run = runner(lambda _: httpx.Response(200, content=b"ok \xff"))
    assert await run("https://api.example.com/", "GET", (), {}, 5) == ("ok \ufffd", False)
    await run.aclose()


async def test_hosts_outside_the_allow_list_are_refused_without_a_request() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    for allowed, url in [
        ([], "https://api.example.com/"),
        (["api.example.com"], "http://10.0.0.1/"),
    ]:
        run = runner(handler, allowed)
        text, is_error = await run(url, "POST", (), {}, 5)
        assert is_error and "not in the server's http_tool_allowed_hosts" in text
        await run.aclose()
    assert calls == []


async def test_redirects_are_checked_per_hop_and_limited() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/to-internal":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/meta"})
        if request.url.path.startswith("/loop"):
            n = int(request.url.path.rsplit("/", 1)[-1] or 0)
            return httpx.Response(302, headers={"location": f"/loop/{n + 1}"})
        if request.url.path == "/hop":
            return httpx.Response(301, headers={"location": "https://cdn.example.com/final"})
        return httpx.Response(200, text=f"final {request.method}")

    run = runner(handler, ["api.example.com", "*.example.com"])
    text, is_error = await run("https://api.example.com/to-internal", "GET", (), {}, 5)
    assert is_error and "169.254.169.254" in text
    text, is_error = await run("https://api.example.com/loop/0", "GET", (), {}, 5)
    assert is_error and "redirects" in text
    assert await run("https://api.example.com/hop", "GET", (), {}, 5) == ("final GET", False)
    await run.aclose()


async def test_network_errors_and_timeouts_are_error_results() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    run = runner(refuse)
    text, is_error = await run("https://api.example.com/", "GET", (), {}, 5)
    assert is_error and "connection refused" in text
    await run.aclose()

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(10)
            return httpx.Response(200)

    slow = HttpxToolRunner(["api.example.com"], transport=Slow())
    text, is_error = await slow("https://api.example.com/", "GET", (), {}, 0.05)
    assert is_error and "timed out" in text
    await slow.aclose()


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("api.example.com", ["API.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("evilexample.com", ["*.example.com"], False),
        ("api.example.com.", ["api.example.com"], True),
        ("localhost", [], False),
    ],
)
def test_host_matching(host: str, allowed: list[str], ok: bool) -> None:
    assert host_allowed(host, tuple(allowed)) is ok

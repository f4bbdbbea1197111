"""Executes stored agents' HTTP tools (§13.7) for the engine, behind an allow-list of hosts.

A stored agent is data anyone with an API key can write, so its URLs must not reach the
server's own network: only hosts listed in ``http_tool_allowed_hosts`` are called (exact names,
or ``*.example.com`` for subdomains), and every redirect hop is checked again. An empty list
refuses every call; the model gets an ``is_error`` result that says why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

MAX_REDIRECTS = 5


class HostNotAllowedError(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().strip().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def guarded_client(
    allowed_hosts: tuple[str, ...],
    *,
    follow_redirects: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that refuses, before connecting, every request (redirect hops
    included) to a host outside ``allowed_hosts`` with :class:`HostNotAllowedError`.

    Shared by HTTP tools and webhook deliveries (§19): both send to URLs that API-key holders
    choose, so both follow the same host rules.
    """

    async def check_host(request: httpx.Request) -> None:
        if not host_allowed(request.url.host, allowed_hosts):
            raise HostNotAllowedError(request.url.host)

    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"request": [check_host]},
        trust_env=False,
    )


def _query_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class HttpxToolRunner:
    """:class:`~vocalis.session.hooks.HttpToolRunner` over one shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        allowed_hosts: list[str],
        max_response_bytes: int = 8192,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allowed = tuple(h for h in allowed_hosts if h.strip())
        self._max_bytes = max_response_bytes
        self._client = guarded_client(self._allowed, follow_redirects=True, transport=transport)

    async def __call__(
        self,
        url: str,
        method: str,
        headers: tuple[tuple[str, str], ...],
        arguments: dict[str, Any],
        timeout_seconds: float,
    ) -> tuple[str, bool]:
        method = (method or "POST").upper()
        try:
            target = httpx.URL(url)
            if method in ("GET", "DELETE"):
                params = dict(target.params)
                params.update({k: _query_value(v) for k, v in arguments.items()})
                request_kwargs: dict[str, Any] = {"params": params}
                target = target.copy_with(query=None)
            else:
                request_kwargs = {"json": arguments}
            async with asyncio.timeout(timeout_seconds):
                return await self._send(method, target, headers, timeout_seconds, request_kwargs)
        except HostNotAllowedError as exc:
            return (
                f"HTTP tool refused: host '{exc.host}' is not in the server's "
                "http_tool_allowed_hosts",
                True,
            )
        except TimeoutError:
            return f"HTTP tool timed out after {timeout_seconds:g} s", True
        except httpx.TooManyRedirects:
            return f"HTTP tool failed: more than {MAX_REDIRECTS} redirects", True
        except (httpx.HTTPError, ValueError) as exc:
            return f"HTTP tool failed: {exc or type(exc).__name__}", True

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: tuple[tuple[str, str], ...],
        timeout_seconds: float,
        request_kwargs: dict[str, Any],
    ) -> tuple[str, bool]:
        async with self._client.stream(
            method,
            url,
            headers=list(headers),
            timeout=httpx.Timeout(timeout_seconds),
            **request_kwargs,
        ) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= self._max_bytes:
                    break
            text = bytes(body[: self._max_bytes]).decode("utf-8", errors="replace")
        if response.is_success:
            return text, False
        return f"HTTP {response.status_code}: {text}", True

    async def aclose(self) -> None:
        await self._client.aclose()

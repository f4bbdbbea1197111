"""What the three external providers share: URLs, headers, clients, and error translation.

Errors become :class:`LLMError` with a message that never carries the URL, the request or the
provider's own message (a provider may echo part of the API key in it); the provider's error
``code`` and ``param`` are passed on, and ``retryable`` follows contract §8 (timeouts, connection
errors, HTTP 408/429/5xx).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, Literal

import httpx

from vocalis.providers.base import LLMError

logger = logging.getLogger(__name__)

ErrorCode = Literal["llm_error", "tts_error", "internal_error"]

#: What a request may raise when it gets no usable response.
REQUEST_ERRORS = (httpx.HTTPError, httpx.InvalidURL)

#: Error bodies longer than this are not worth reading (and not worth logging).
MAX_ERROR_BODY_BYTES = 16_384

_shared_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def endpoint(base_url: str, path: str) -> str:
    """``{base_url without trailing slash}/{path}``."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def timeout(seconds: float) -> httpx.Timeout:
    """``seconds`` for connecting and between two reads (a stream may last longer in total)."""
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def _new_client() -> httpx.AsyncClient:
    # Generous pool: many sessions may stream from the same server at once.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=32)
    return httpx.AsyncClient(limits=limits, follow_redirects=False)


class ClientSource:
    """The HTTP client a provider uses: one given by the caller, one of its own created on
    first use (closed by ``aclose``), or, with ``shared=True``, one client per event loop for
    short-lived providers that nobody closes (a stored agent's custom LLM, made per session)."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, shared: bool = False):
        self._given = client
        self._own: httpx.AsyncClient | None = None
        self._shared = shared

    def get(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        if self._shared:
            loop = asyncio.get_running_loop()
            client = _shared_clients.get(loop)
            if client is None or client.is_closed:
                client = _shared_clients[loop] = _new_client()
            return client
        if self._own is None or self._own.is_closed:
            self._own = _new_client()
        return self._own

    async def aclose(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            await own.aclose()


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """``(code, param, message)`` of an OpenAI-style ``{"error": {...}}`` body (or Ollama's
    ``{"error": "message"}``); ``None`` where absent."""
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if isinstance(error, str):
        return None, None, error
    if not isinstance(error, dict):
        return None, None, None

    def text(key: str) -> str | None:
        value = error.get(key)
        return None if value is None else str(value)

    return text("code") or text("type"), text("param"), text("message")


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


async def http_error(
    response: httpx.Response, what: str, *, code: ErrorCode, api_key: str | None
) -> LLMError:
    """The error for a response with status >= 400 (its body is read here, bounded)."""
    raw = b""
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) > MAX_ERROR_BODY_BYTES:
            break
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    provider_code, param, message = error_fields(body)
    logger.debug(
        "%s: HTTP %d, provider code %s: %s",
        what,
        response.status_code,
        provider_code,
        _redact(message or raw[:500].decode("utf-8", "replace"), api_key),
    )
    return LLMError(
        f"{what} failed: HTTP {response.status_code}",
        retryable=is_retryable_status(response.status_code),
        status_code=response.status_code,
        provider_code=provider_code,
        provider_param=param,
        code=code,
    )


def stream_error(body: Any, what: str, *, code: ErrorCode, api_key: str | None) -> LLMError:
    """The error for an ``{"error": …}`` object sent inside a 200 stream (vLLM does this)."""
    provider_code, param, message = error_fields(body)
    logger.debug(
        "%s: error in stream, code %s: %s", what, provider_code, _redact(message or "", api_key)
    )
    status = int(provider_code) if provider_code and provider_code.isdigit() else None
    return LLMError(
        f"{what} failed: error in stream" + (f" (HTTP {status})" if status else ""),
        retryable=status is not None and is_retryable_status(status),
        status_code=status,
        provider_code=provider_code,
        provider_param=param,
        code=code,
    )


def transport_error(
    exc: httpx.HTTPError | httpx.InvalidURL, what: str, *, code: ErrorCode
) -> LLMError:
    """The error for a request that got no usable response."""
    if isinstance(exc, httpx.TimeoutException):
        reason, retryable = "timed out", True
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        reason, retryable = "invalid base URL", False
    elif isinstance(exc, httpx.ConnectError):
        reason, retryable = "could not connect", True
    elif isinstance(exc, httpx.TransportError):
        reason, retryable = "connection error", True
    else:
        reason, retryable = "request error", False
    logger.debug("%s: %s (%s)", what, reason, type(exc).__name__)
    return LLMError(f"{what} failed: {reason}", retryable=retryable, code=code)

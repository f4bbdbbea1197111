"""Operations routes (§17.6) and the browser client: ``/healthz``, ``/metrics``, ``/``, ``/static``.

``POST /v1/browser-token`` lets the web page start a session without holding an API key: it mints
a short-lived temporary token, but only in open development mode or when the operator sets
``browser_tokens`` (anyone who can reach the page can then start sessions).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from vocalis import __version__, metrics
from vocalis.command import vocalis_command
from vocalis.providers.workers import worker_lags
from vocalis.server.state import AppState, app_state
from vocalis.session import admission
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings

log = logging.getLogger("vocalis")

STATIC_DIR: Final = Path(__file__).parent / "static"
BROWSER_TOKEN_EXPIRES_SECONDS: Final = 60  # the page redeems it at once
BROWSER_SESSION_SECONDS: Final = 1800  # cap of a session started from the page
STORAGE_PING_TIMEOUT_SECONDS: Final = 2.0
_ANY_ADDRESS: Final = {"0.0.0.0", "::", ""}

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def include_ops(app: FastAPI) -> None:
    """Add the operations routes, the web page and the start-up announcement to ``app``."""
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", scrape_metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/browser-token", browser_token, methods=["POST"], tags=["browser"])
    app.add_api_route("/", index_page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.router.lifespan_context = _announcing(app.router.lifespan_context)


# ---------------------------------------------------------------------------------- health
async def healthz(request: Request) -> JSONResponse:
    """200 when sessions can be accepted; 503 ``starting`` while models load, ``draining``."""
    state = app_state(request.app)
    status: str = state.status
    if status != "ok":
        return JSONResponse({"status": status}, status_code=503)
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    if state.providers is not None:
        body["providers"] = state.providers.name
    reachable = await _storage_reachable(state.storage)
    if reachable is not None:
        body["storage"] = "ok" if reachable else "unreachable"
    if state.manager is not None:
        body["capacity"] = capacity(state.manager)
    return JSONResponse(body)


def capacity(manager: SessionManager) -> dict[str, Any]:
    """What a load balancer needs to route the next caller: the node's session budget, how many
    it holds, how many more it would take now, and how far its model workers are behind.

    ``/healthz`` stays 200 when the node is full (it is healthy, and its calls must go on);
    ``accepting: false`` says a new session would get ``at_capacity`` right now.
    """
    budget, load = manager.budget(), manager.load()
    left = admission.available(budget, load)
    return {
        "max_sessions": budget.max_sessions or None,
        "sessions": load.sessions,
        "available": left,
        "accepting": admission.decide(budget, load) is admission.Verdict.ADMIT,
        "lag_seconds": round(load.lag_seconds, 3),
        "max_lag_seconds": budget.max_lag_seconds or None,
    }


async def _storage_reachable(storage: Any) -> bool | None:
    """``None`` when storage cannot be probed (no ``ping()``), else whether it answered."""
    ping = getattr(storage, "ping", None)
    if not callable(ping):
        return None
    try:
        result = ping()
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, STORAGE_PING_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("storage ping failed: %s", type(exc).__name__)
        return False
    return result is None or bool(result)


# ---------------------------------------------------------------------------------- metrics
async def scrape_metrics(request: Request) -> Response:
    """Prometheus text exposition of :mod:`vocalis.metrics`."""
    manager = app_state(request.app).manager
    if manager is not None:
        metrics.set_sessions_active(len(manager.live_sessions()))
        budget, load = manager.budget(), manager.load()
        available = admission.available(budget, load)
        metrics.set_capacity(budget.max_sessions, available, load.lag_seconds, worker_lags())
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


# ---------------------------------------------------------------------------------- browser
async def browser_token(request: Request) -> JSONResponse:
    """A temporary token for the web page, when the operator allows it (or open mode)."""
    state = app_state(request.app)
    settings = state.settings
    if not (settings.open_mode or settings.browser_tokens):
        return _error(
            request,
            403,
            "forbidden",
            "Browser tokens are disabled on this server: the operator can set "
            "VOCALIS_BROWSER_TOKENS=true, or mint a token with an API key (POST /v1/tokens)",
        )
    cap = min(BROWSER_SESSION_SECONDS, settings.default_max_session_duration_seconds)
    token, _ = await state.tokens.issue(BROWSER_TOKEN_EXPIRES_SECONDS, cap)
    return JSONResponse(
        {
            "token": token,
            "expires_in_seconds": BROWSER_TOKEN_EXPIRES_SECONDS,
            "max_session_duration_seconds": cap,
        },
        headers={"Cache-Control": "no-store"},
    )


def _error(request: Request, status: int, code: str, message: str) -> JSONResponse:
    """A §17.1-shaped error body."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "param": None,
            "request_id": request.scope.get("vocalis.request_id"),
            "errors": None,
            "detail": message,
        },
        status_code=status,
    )


async def index_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------------------------- start-up
def _announcing(inner: Lifespan) -> Lifespan:
    """Wrap the app's lifespan to announce what was loaded and how to connect once ready."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as value:
            task = asyncio.create_task(_announce_when_ready(app_state(app)))
            try:
                yield value
            finally:
                task.cancel()

    return lifespan


async def _announce_when_ready(state: AppState) -> None:
    await state.ready.wait()
    providers = state.providers
    if providers is not None:
        loaded = "; ".join(f"{stage}: {what}" for stage, what in providers.details.items())
        log.info("providers loaded: %s (%s)", providers.name, loaded or "no details")
    for line in connection_hints(state.settings):
        log.info("%s", line)


def connection_hints(settings: Settings) -> list[str]:
    """Where the server listens and how to connect to it, one sentence per line."""
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    if ":" in host:
        host = f"[{host}]"
    base = f"{host}:{settings.port}"
    ws_url = f"ws://{base}/v1/ws"
    credential = "" if settings.open_mode else " --api-key <key>"
    lines = [
        f"ready: voice agent socket {ws_url}",
        f"web page: http://{base}/",
        f"talk to it: {vocalis_command()} talk --url {ws_url}{credential}",
    ]
    if not settings.open_mode and not settings.browser_tokens:
        lines.append(
            "the web page needs an API key typed into it, or VOCALIS_BROWSER_TOKENS=true "
            "to mint temporary tokens for anyone who can reach it"
        )
    return lines

"""The FastAPI application: state, lifespan (providers, storage, sessions) and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from vocalis import __version__, metrics
from vocalis.command import vocalis_command
from vocalis.providers.base import ProviderSet
from vocalis.providers.factory import build_providers
from vocalis.server.state import AppState as AppState  # re-exported: serve.py imports it here
from vocalis.server.tokens import TokenStore
from vocalis.server.ws import voice_agent_socket
from vocalis.session.clock import Clock, RealClock
from vocalis.session.hooks import SessionDeps
from vocalis.session.manager import SessionManager
from vocalis.session.shared import SharedState
from vocalis.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    providers: ProviderSet | None = None,
    clock: Clock | None = None,
    webhook_clock: Clock | None = None,
) -> FastAPI:
    """An app serving ``settings``. ``providers`` overrides the configured set (tests);
    ``webhook_clock`` times webhook retries (tests run the 1 s/5 s/25 s schedule fast)."""
    clock = clock or RealClock()
    state = AppState(settings=settings, clock=clock, tokens=TokenStore(clock))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opening = asyncio.create_task(_open_storage(state.settings))
        loading = asyncio.create_task(_start(state, providers, opening, webhook_clock))
        try:
            yield
        finally:
            state.status = "draining"
            loading.cancel()  # model loading may be cut short; opening storage may not
            if isinstance(state.manager, SessionManager):
                await state.manager.shutdown()
            if state.webhooks is not None:
                await state.webhooks.aclose()
            storage = None
            with contextlib.suppress(Exception):
                storage = await asyncio.wait_for(asyncio.shield(opening), timeout=30)
            if storage is not None:
                await storage.aclose()
            if state.shared is not None:
                await state.shared.aclose()
            if state.providers is not None:
                await state.providers.aclose()

    app = FastAPI(title="Vocalis", version=__version__, lifespan=lifespan)
    app.state.vocalis = state
    app.add_api_websocket_route("/v1/ws", voice_agent_socket)
    app.add_api_websocket_route("/v1/realtime", voice_agent_socket)
    _include_optional(app)
    return app


async def _start(
    state: AppState,
    providers: ProviderSet | None,
    opening: asyncio.Task[Any],
    webhook_clock: Clock | None = None,
) -> None:
    """Open storage, then load models, while the server already answers /healthz."""
    try:
        storage = await asyncio.shield(opening)  # REST works while models load
        state.storage = storage
        if state.settings.redis_url:
            state.shared = await _connect_shared(state.settings, storage)
            state.tokens.shared = state.shared
        recorder = getattr(storage, "recorder", None)
        if recorder is not None and getattr(storage, "webhooks", None) is not None:
            recorder = _start_webhooks(state, storage, recorder, webhook_clock or state.clock)
        state.providers = metrics.timed(providers or await build_providers(state.settings))
        state.manager = SessionManager(
            SessionDeps(
                state.settings,
                state.providers,
                state.clock,
                recorder=recorder,
                http_runner=getattr(storage, "http_tool_runner", None),
                agent_lookup=getattr(storage, "agent_lookup", None),
                llm_factory=_llm_factory(),
                shared=state.shared,
            )
        )
        state.status = "ok"
        state.ready.set()
        log.info("ready: providers=%s", state.providers.name)
    except Exception as exc:
        state.failure = startup_failure(exc)
        expected = type(exc).__name__ == "MissingModelError"  # no traceback for a setup step
        log.error("start-up failed: %s", state.failure, exc_info=None if expected else exc)


def _start_webhooks(state: AppState, storage: Any, recorder: Any, clock: Clock) -> Any:
    """Start §19 deliveries (pending ones from before a restart included); the recorder that
    sessions report to then also queues their webhook events."""
    from vocalis.server.webhooks import WebhookDispatcher, WebhookRecorder

    dispatcher = WebhookDispatcher(storage.webhooks, state.settings.http_tool_allowed_hosts, clock)
    dispatcher.start()
    state.webhooks = dispatcher
    return WebhookRecorder(recorder, dispatcher)


def startup_failure(exc: BaseException) -> str:
    """One line for the operator: what failed and, where we know it, the command that fixes it."""
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__name__ == "MissingModelError" and "models prepare" not in text:
        text += f"; run `{vocalis_command()} models prepare` (or `make setup`) to install them"
    return text


async def _connect_shared(settings: Settings, storage: Any) -> SharedState:
    """The cluster's Redis store, under the same node id as the storage's session rows."""
    from vocalis.storage.nodes import new_node_id
    from vocalis.storage.redis_state import RedisState

    node = getattr(storage, "node", None)
    node_id = getattr(node, "node_id", None) or settings.node_id or new_node_id()
    days = settings.session_retention_days
    key = None
    if settings.secret_key:
        from vocalis.storage.crypto import fernet_key

        key = fernet_key(settings.secret_key)
    assert settings.redis_url is not None
    shared = await RedisState.connect(
        settings.redis_url,
        node_id,
        resume_token_ttl_seconds=days * 86400 if days > 0 else None,
        fernet_key=key,
    )
    log.info("cluster state on Redis (node %s)", node_id)
    return shared


async def _open_storage(settings: Settings) -> Any:
    try:
        from vocalis.storage import open_storage
    except ImportError:
        return None
    return await open_storage(settings)


def _llm_factory() -> Any:
    try:
        from vocalis.providers.external.llm import custom_llm_factory
    except ImportError:
        return None
    return custom_llm_factory


def _include_optional(app: FastAPI) -> None:
    """Routers owned by other layers, included when present."""
    try:
        from vocalis.server.rest import include_rest
    except ImportError:
        pass
    else:
        include_rest(app)
    try:
        from vocalis.server.ops import include_ops
    except ImportError:
        pass
    else:
        include_ops(app)

"""Running the app under uvicorn: bind first, end sessions properly on shutdown (§15.1), and
stop (non-zero) when start-up fails instead of staying up unable to serve."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket

import uvicorn

from vocalis.server.app import create_app
from vocalis.server.state import AppState, app_state
from vocalis.settings import Settings

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
log = logging.getLogger("vocalis")


class _Server(uvicorn.Server):
    """Ends every session with ``session.ended`` and close 1001 before sockets are closed; a
    cluster node drains instead (``SessionManager.drain``): /healthz says ``draining`` so the
    balancer stops routing to it, replies finish, and its sessions move to other nodes (1012)."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.vocalis = state
        self._frozen = False

    async def on_tick(self, counter: int) -> bool:
        # A server whose models or storage failed to load can never serve: stop, so that the
        # operator (or a supervisor) sees the failure instead of a 503 "starting" forever.
        if self.vocalis.failure is not None:
            return True
        if not self._frozen and self.vocalis.ready.is_set():
            self._frozen = True
            freeze_start_up_objects()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.vocalis.status = "draining"
        manager = self.vocalis.manager
        if manager is not None:
            if manager.cluster is not None:
                await manager.drain(self.vocalis.settings.drain_seconds)
            await manager.shutdown()
            await asyncio.sleep(0.2)  # let the writers flush session.ended
        await super().shutdown(sockets=sockets)


def freeze_start_up_objects() -> None:
    """Move what start-up built (libraries, models, settings: ~100 000 objects that live as
    long as the process) out of the cyclic garbage collector's sight.

    Ended sessions are reference cycles and wait for a full collection to be freed (see
    ``SessionManager._collect_ended``); a full pass over a freshly started server takes
    60-75 ms of the event loop, over what sessions add once start-up is frozen 1-2 ms
    (measured with the embedded stack loaded). Only the server process does this: a
    process that builds several apps (tests) would keep their cycles forever.
    """
    gc.collect()
    gc.freeze()


class BindError(OSError):
    """The port could not be taken; the message says what to do about it."""


def refuse_open_bind(settings: Settings) -> str | None:
    """§3.5: without API keys only loopback binds are allowed. Returns the refusal message."""
    if settings.open_mode and settings.host not in LOOPBACK:
        return (
            f"refusing to bind {settings.host} without API keys: set VOCALIS_API_KEYS "
            "(without keys authentication is disabled, so only loopback addresses are allowed)"
        )
    return None


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, taken *before* the app starts.

    Binding first means a second server started on a busy port fails in milliseconds, before it
    opens storage, loads models or cleans up sessions it might wrongly believe orphaned.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = (
            " (another server, perhaps another Vocalis, is using it: stop it, or choose another "
            "port with --port or VOCALIS_PORT)"
            if exc.errno == 98
            else ""
        )
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from exc
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, sock: socket.socket) -> int:
    """Serve on ``sock`` until stopped; returns the process exit code (1 if start-up failed)."""
    if settings.open_mode:
        log.warning(
            "no API keys configured (VOCALIS_API_KEYS): authentication is disabled "
            "(open development mode, loopback only)"
        )
    app = create_app(settings)
    state = app_state(app)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=16 * 1024 * 1024,
        ws_ping_interval=settings.ping_interval_seconds,
        ws_ping_timeout=settings.ping_timeout_seconds,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON formatter (and its token masking) for uvicorn's lines
        timeout_graceful_shutdown=10,  # a stuck connection must not hold SIGTERM forever
    )
    _Server(config, state).run(sockets=[sock])
    if state.failure is not None:
        log.error("stopped: %s", state.failure)
        return 1
    return 0

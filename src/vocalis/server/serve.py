"""Running the app under uvicorn with a shutdown that ends sessions properly (§15.1)."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from vocalis.server.app import AppState, create_app
from vocalis.settings import Settings

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
log = logging.getLogger("vocalis")


class _Server(uvicorn.Server):
    """Ends every session with ``session.ended`` and close 1001 before sockets are closed."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.vocalis = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.vocalis.status = "draining"
        manager = self.vocalis.manager
        if manager is not None:
            await manager.shutdown()
            await asyncio.sleep(0.2)  # let the writers flush session.ended
        await super().shutdown(sockets=sockets)


def refuse_open_bind(settings: Settings) -> str | None:
    """§3.5: without API keys only loopback binds are allowed. Returns the refusal message."""
    if settings.open_mode and settings.host not in LOOPBACK:
        return (
            f"refusing to bind {settings.host} without API keys: set VOCALIS_API_KEYS "
            "(without keys authentication is disabled, so only loopback addresses are allowed)"
        )
    return None


def serve(settings: Settings) -> None:
    if settings.open_mode:
        log.warning(
            "no API keys configured (VOCALIS_API_KEYS): authentication is disabled "
            "(open development mode, loopback only)"
        )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=16 * 1024 * 1024,
        ws_ping_interval=settings.ping_interval_seconds,
        ws_ping_timeout=settings.ping_timeout_seconds,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON formatter (and its token masking) for uvicorn's lines
    )
    _Server(config, app.state.vocalis).run()

"""A REST-only server over real storage (no WebSocket, no models), for development and tests.

``python -m vocalis.server.rest.standalone [--host H] [--port P]`` reads the usual ``VOCALIS_*``
settings. The full server is built by the app factory; this one only lacks the session manager.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from vocalis.server.rest import include_rest
from vocalis.server.state import AppState
from vocalis.server.tokens import TokenStore
from vocalis.session.clock import RealClock
from vocalis.settings import Settings
from vocalis.storage import open_storage


def build_app(settings: Settings, manager: Any = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = await open_storage(settings)
        clock = RealClock()
        state = AppState(settings, clock, TokenStore(clock), manager=manager, storage=storage)
        state.status = "ok"
        state.ready.set()
        app.state.vocalis = state
        try:
            yield
        finally:
            await storage.aclose()

    app = FastAPI(title="Vocalis REST", lifespan=lifespan)
    include_rest(app)
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    settings = Settings()
    uvicorn.run(
        build_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

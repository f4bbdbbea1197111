"""Run a Vocalis server in a background thread (tests, benchmarks, embedding in an app)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from vocalis.providers.base import ProviderSet
from vocalis.server.app import create_app
from vocalis.server.state import AppState, app_state
from vocalis.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def background_server(
    provider_set: ProviderSet | None = None, start_timeout: float = 900, **settings: Any
) -> Iterator[tuple[str, AppState]]:
    """Serve on 127.0.0.1 (an ephemeral port) until the block exits; yields (ws URL, state)."""
    port = free_port()
    app = create_app(Settings(host="127.0.0.1", port=port, **settings), providers=provider_set)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=16 << 20
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="vocalis-server", daemon=True)
    thread.start()
    state = app_state(app)
    deadline = time.monotonic() + start_timeout
    while not (server.started and state.ready.is_set()):
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{port}/v1/ws", state
    finally:
        server.should_exit = True
        thread.join(timeout=15)

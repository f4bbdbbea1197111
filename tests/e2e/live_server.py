"""A real Vocalis server (uvicorn, fake providers) on an ephemeral loopback port, in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from vocalis.providers.fake import build_fake_providers
from vocalis.server.app import create_app
from vocalis.settings import Settings


@dataclass(frozen=True)
class LiveServer:
    host: str
    port: int
    app: Any

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws"


@contextmanager
def live_server(
    data_dir: Path, *, start_timeout: float = 20.0, **settings: Any
) -> Iterator[LiveServer]:
    """Serve until the block ends; waits until ``/healthz`` answers 200.

    Fake providers unless ``providers="embedded"`` is given (then the app loads the models).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base: dict[str, Any] = {"providers": "fake", "data_dir": str(data_dir), "port": port}
    base.update(settings)
    fake = base["providers"] == "fake"
    app = create_app(Settings(**base), providers=build_fake_providers() if fake else None)
    config = uvicorn.Config(app, log_level="warning", ws_max_size=16 * 1024 * 1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", thread, start_timeout)
        yield LiveServer("127.0.0.1", port, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _wait_healthy(url: str, thread: threading.Thread, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited during start-up")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {timeout} s")

"""A socket that arrives while the server is still starting gets an answer, not silence."""

from __future__ import annotations

import asyncio
import threading

import pytest

import vocalis.server.app as app_module
from tests.integration.conftest import MakeServer
from vocalis.settings import Settings


def test_a_socket_before_ready_gets_at_capacity_and_1013(
    make_ws_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = threading.Event()

    async def slow_storage(settings: Settings) -> None:
        while not opened.is_set():  # storage (then models) still loading
            await asyncio.sleep(0.01)

    monkeypatch.setattr(app_module, "_open_storage", slow_storage)
    server = make_ws_server(legacy_ready_timeout_seconds=0.2)
    try:
        with server.connect() as client:
            client.expect_error(
                "at_capacity", "Server is at capacity; try again later", session_id=None
            )
            assert client.expect_close() == 1013
        assert server.state.status == "starting"
    finally:
        opened.set()

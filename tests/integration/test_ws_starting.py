"""A socket that arrives while the server is still starting gets an answer, not silence."""

from __future__ import annotations

import asyncio
import threading
import time

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


def test_a_first_message_while_loading_is_answered_at_once(
    make_ws_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends ``session.update`` at once does not wait out the 3 s."""
    opened = threading.Event()

    async def slow_storage(settings: Settings) -> None:
        while not opened.is_set():
            await asyncio.sleep(0.01)

    monkeypatch.setattr(app_module, "_open_storage", slow_storage)
    server = make_ws_server(legacy_ready_timeout_seconds=30)
    try:
        with server.connect() as client:
            started = time.monotonic()
            client.send({"type": "session.update", "session": {}})
            client.expect_error(
                "at_capacity", "Server is at capacity; try again later", session_id=None
            )
            assert client.expect_close() == 1013
            assert time.monotonic() - started < 2.0
    finally:
        opened.set()


def test_a_socket_that_arrives_while_loading_is_served_once_ready(
    make_ws_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ready within the wait, before the client speaks: the session starts as usual."""
    opened = threading.Event()

    async def slow_storage(settings: Settings) -> None:
        while not opened.is_set():
            await asyncio.sleep(0.01)

    monkeypatch.setattr(app_module, "_open_storage", slow_storage)
    server = make_ws_server(legacy_ready_timeout_seconds=30)
    with server.connect() as client:
        opened.set()
        deadline = time.monotonic() + 5
        while server.state.status == "starting":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.start()
        client.assert_alive()

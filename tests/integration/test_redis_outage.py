"""Redis down or restarted mid-session (issue #13): a clear log and error, no crash, and the
sessions of the node go on; what needs the store waits for it and comes back with it.

A private redis-server is started for this test (it is killed and started again on the same
port); the node is the real app behind the real ``/v1/ws`` route.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time

import pytest
import redis

from tests.integration.conftest import MakeServer
from tests.integration.redis_fixture import _wait_for_port, ensure, free_port


def start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, proc)
    return proc


def wait_for_checkpoint(url: str, session_id: str) -> None:
    client = redis.Redis.from_url(url)
    for _ in range(100):
        if client.exists(f"vocalis:ckpt:{session_id}"):
            return
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of {session_id} in Redis")


def test_sessions_outlive_a_redis_restart(
    make_ws_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    ensure("redis-server:redis-server")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc = start_redis(port)
    try:
        server = make_ws_server(redis_url=url, secret_key="outage-test-secret")
        server.wait_ready()
        with caplog.at_level(logging.INFO), server.connect() as ws:
            sid = ws.start()["session_id"]
            ws.assert_alive("before")
            wait_for_checkpoint(url, sid)

            proc.kill()
            proc.wait()
            ws.assert_alive("during")  # the session talks on without the store
            with server.connect() as other:  # and a new one is admitted on this node
                other.start()
                other.assert_alive("another")
            with server.connect(credential="tok_unknown") as third:
                # a token needs the store: a clear, retryable refusal instead of a crash
                third.expect_error("at_capacity", "Server is at capacity; try again later")
                assert third.expect_close() == 1013

            proc = start_redis(port)  # empty: no persistence
            ws.assert_alive("after")
            wait_for_checkpoint(url, sid)  # written again, with what happened meanwhile
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("not written" in w for w in warnings), warnings
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        proc.kill()

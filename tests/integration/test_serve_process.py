"""`vocalis serve` as a user runs it: open-mode bind refusal and a graceful shutdown (§3.5, §15)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from vocalis.server.background import free_port

VOCALIS = [sys.executable, "-m", "vocalis.cli"]


def test_open_mode_refuses_a_public_bind(tmp_path: Path) -> None:
    env = {**os.environ, "VOCALIS_API_KEYS": "", "VOCALIS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [*VOCALIS, "serve", "--host", "0.0.0.0", "--providers", "fake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "VOCALIS_API_KEYS" in done.stderr


def test_shutdown_ends_sessions_with_session_ended_and_1001(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VOCALIS_DATA_DIR": str(tmp_path), "VOCALIS_API_KEYS": ""}
    server = subprocess.Popen(
        [*VOCALIS, "serve", "--port", str(port), "--providers", "fake"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        events, code = asyncio.run(_session_through_shutdown(port, server))
    finally:
        server.kill()
        server.wait()
    assert events[-1]["type"] == "session.ended"
    assert events[-1]["reason"] == "server_shutdown"
    assert code == 1001


async def _session_through_shutdown(
    port: int, server: subprocess.Popen[bytes]
) -> tuple[list[dict[str, object]], int | None]:
    ws = await _connect(port)
    events: list[dict[str, object]] = []
    async with ws:
        await ws.send(json.dumps({"type": "session.update", "session": {}}))
        events.append(json.loads(await ws.recv()))
        events.append(json.loads(await ws.recv()))
        assert events[-1]["type"] == "session.ready"
        server.send_signal(signal.SIGINT)
        try:
            async for raw in ws:
                events.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        return events, ws.close_code


async def _connect(port: int) -> websockets.ClientConnection:
    """A socket to a server process that may still be starting: wait for ``/healthz`` to say
    ``ok`` first, as a load balancer would (a socket opened while the server loads is refused
    with ``at_capacity``, 1013, once it speaks)."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server on port {port} never became healthy")
            await asyncio.sleep(0.2)
    return await websockets.connect(f"ws://127.0.0.1:{port}/v1/ws")


def test_missing_models_stop_the_server_with_the_fix(tmp_path: Path) -> None:
    """Issue #9: an empty data dir used to leave a server up, answering 503 forever."""
    env = {**os.environ, "VOCALIS_API_KEYS": "", "VOCALIS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [*VOCALIS, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "models are missing" in done.stderr
    assert "models prepare" in done.stderr
    assert str(tmp_path / "models") in done.stderr


def test_a_start_up_failure_after_binding_stops_the_process(tmp_path: Path) -> None:
    """Storage that cannot open is found only inside the app: the process still exits 1."""
    env = {
        **os.environ,
        "VOCALIS_API_KEYS": "",
        "VOCALIS_DATA_DIR": str(tmp_path),
        "VOCALIS_DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-dir' / 'vocalis.db'}",
    }
    done = subprocess.run(
        [*VOCALIS, "serve", "--port", str(free_port()), "--providers", "fake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "start-up failed" in done.stderr


def test_a_second_server_on_a_busy_port_leaves_the_first_ones_sessions(tmp_path: Path) -> None:
    """Issue #9: the failed second start used to end the first server's live sessions."""
    port = free_port()
    env = {**os.environ, "VOCALIS_DATA_DIR": str(tmp_path), "VOCALIS_API_KEYS": ""}
    command = [*VOCALIS, "serve", "--port", str(port), "--providers", "fake"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        session_id, second, listed = asyncio.run(_second_start_during_a_session(port, command, env))
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 1
    assert "cannot listen on 127.0.0.1" in second.stderr
    assert "VOCALIS_PORT" in second.stderr
    assert {s["id"]: s["status"] for s in listed["sessions"]} == {session_id: "active"}
    with sqlite3.connect(tmp_path / "vocalis.db") as db:
        stored = db.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()
    assert stored is not None and stored[0] != "ended"  # killed later: the row is not ended


async def _second_start_during_a_session(
    port: int, command: list[str], env: dict[str, str]
) -> tuple[str, subprocess.CompletedProcess[str], dict[str, Any]]:
    async with await _connect(port) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {}}))
        while (ready := json.loads(await ws.recv()))["type"] != "session.ready":
            pass
        second = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
        )
        async with httpx.AsyncClient() as http:
            listed = (await http.get(f"http://127.0.0.1:{port}/v1/sessions", timeout=10)).json()
        return str(ready["session_id"]), second, listed

"""kill -9 loses no acknowledged write: every agent whose POST returned 201 survives a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

AUTH = {"Authorization": "Bearer durable-key"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCALIS_")} | {
        "VOCALIS_DATA_DIR": str(data_dir),
        "VOCALIS_API_KEYS": "durable-key",
        "VOCALIS_SECRET_KEY": "durability test",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocalis.server.rest.standalone", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''!r}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/agents", headers=AUTH).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def test_acknowledged_agents_survive_kill_9(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_server(tmp_path, port)
    acked: list[str] = []
    stop = threading.Event()

    def post_forever() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=5) as c:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"name": f"agent {i}", "system_prompt": "p" * 2000, "voice": "ivy"}
                try:
                    resp = c.post("/v1/agents", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                if resp.status_code == 201:
                    acked.append(resp.json()["id"])

    writer = threading.Thread(target=post_forever)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: a POST is in flight
        server.wait(10)
    finally:
        stop.set()
        writer.join(10)
        if server.poll() is None:
            server.kill()
    assert len(acked) >= 40

    restarted = _start_server(tmp_path, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as c:
            missing = [a for a in acked if c.get(f"/v1/agents/{a}").status_code != 200]
            listed = c.get("/v1/agents?limit=200").json()["agents"]
            huge = c.post("/v1/agents", content=b"[" + b"0," * (1 << 19) + b"0]")
    finally:
        restarted.terminate()
        restarted.wait(10)
    assert missing == []
    assert set(acked) <= {a["id"] for a in listed}
    assert huge.status_code == 413  # through a real server too
    assert huge.json()["code"] == "payload_too_large"

"""A throwaway redis-server for tests, started once per test process.

Debian's ``redis-server`` is installed with ``scripts/ensure_packages.sh`` when missing, then run
in the foreground on a free loopback port without persistence. Tests skip, saying why, only
when no server can be had.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE = REPO / "scripts" / "ensure_packages.sh"

_server: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ensure(*pairs: str) -> None:
    """Install the Debian packages of ``program:package`` pairs whose program is missing;
    ``pytest.skip`` with the reason when that cannot be done."""
    proc = subprocess.run([str(ENSURE), *pairs], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"cannot install {' '.join(pairs)}: {proc.stderr.strip()[-300:]}")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start listening")


def redis_url() -> str:
    """The URL of the shared test redis-server (database 0); skips when there is none."""
    if "url" in _server:
        return _server["url"]
    ensure("redis-server:redis-server")
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.kill)
    _wait_for_port(port, proc)
    _server["url"] = f"redis://127.0.0.1:{port}/0"
    return _server["url"]

"""A Vocalis server in its own process, measured from outside: CPU seconds, RSS, threads.

The load benchmarks run their simulated callers in the bench process and the server in a child
process, so the server's CPU time (``/proc/<pid>/stat`` utime + stime, all its threads) is
counted apart from the callers'. CPU seconds are a cost measure that stays meaningful on a shared
machine where wall-clock latency does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime

    def _status(self, key: str) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
        return int(found.group(1)) if found else 0

    def rss_mb(self) -> float:
        return self._status("VmRSS") / 1024

    def threads(self) -> int:
        return self._status("Threads")

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.http}/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else float("nan")

    def health(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(f"{self.http}/healthz", timeout=10).json()
        return body


@contextlib.contextmanager
def server_process(
    providers: str, *, env: dict[str, str] | None = None, pythonpath: str | None = None
) -> Iterator[ServerProcess]:
    """Start ``vocalis serve`` on a free port with a throwaway data dir (models linked in);
    wait until /healthz says ok; stop it at the end."""
    with tempfile.TemporaryDirectory(prefix="vocalis-bench-") as data:
        models = Path.home() / ".local/share/vocalis/models"
        if models.is_dir():
            (Path(data) / "models").symlink_to(models)
        port = _free_port()
        full_env = {
            **os.environ,
            "VOCALIS_DATA_DIR": data,
            "VOCALIS_LOG_LEVEL": "warning",
            "PYTHONPATH": pythonpath or f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}",
            **(env or {}),
        }
        cmd = [sys.executable, "-c", "import sys; from vocalis.cli import main; sys.exit(main())"]
        cmd += ["serve", "--providers", providers, "--port", str(port)]
        proc = subprocess.Popen(cmd, env=full_env)
        server = ServerProcess(proc, port)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{server.http}/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not become ready")
                time.sleep(0.2)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

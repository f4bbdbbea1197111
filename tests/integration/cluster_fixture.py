"""A real Vocalis cluster for tests: redis-server, PostgreSQL, one shared LLM server, two Vocalis
processes and HAProxy in front, all started here and stopped at the end.

Why these pieces: the point is the cluster behaviour (shared state, resume on any node, crash
recovery, drain), so every component a deployment has is real — Debian's redis-server and
HAProxy, the PostgreSQL of ``postgres_fixture.py``, llama.cpp's OpenAI-compatible server (from
the xllamacpp wheel, ``scripts/llm_server.py``) serving the embedded GGUF — while the nodes use
the fake VAD/STT/TTS (``--providers fake``), so that two nodes, the LLM and the test fit on a
shared 2-core machine. The nodes reach the LLM over the external-engine path, as in production.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.postgres_fixture import fresh_postgres_url
from tests.integration.redis_fixture import REPO, ensure, free_port, redis_url

MODEL = Path.home() / ".local/share/vocalis/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
API_KEY = "cluster-test-key"
SECRET = "cluster-test-secret"

HAPROXY_CFG = """
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option redispatch
    retries 3
frontend voice
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{servers}
"""


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url}")


@dataclass
class Cluster:
    workdir: Path
    redis: str
    database: str
    llm_port: int
    lb_port: int
    node_ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.lb_port}/v1/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def start_node(self, name: str) -> None:
        env = dict(os.environ)
        env.update(
            {
                "VOCALIS_HOST": "127.0.0.1",
                "VOCALIS_PORT": str(self.node_ports[name]),
                "VOCALIS_PROVIDERS": "fake",
                "VOCALIS_API_KEYS": API_KEY,
                "VOCALIS_SECRET_KEY": SECRET,
                "VOCALIS_NODE_ID": name,
                "VOCALIS_DATA_DIR": str(self.workdir / name),
                "VOCALIS_DATABASE_URL": self.database,
                "VOCALIS_REDIS_URL": self.redis,
                "VOCALIS_RECORDING": "true",
                "VOCALIS_LLM_BASE_URL": f"http://127.0.0.1:{self.llm_port}/v1",
                "VOCALIS_LLM_MODEL": MODEL.name,
                "VOCALIS_RESUME_GRACE_SECONDS": "120",
                "VOCALIS_DRAIN_SECONDS": "60",
                "VOCALIS_REPLY_MAX_TOKENS": "24",
                "VOCALIS_DEFAULT_SYSTEM_PROMPT": "Answer in one short sentence.",
                "VOCALIS_LOG_JSON": "false",
                "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
            }
        )
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept for the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "vocalis.cli", "serve"], env=env, stdout=log, stderr=log
        )
        self.procs[name] = proc
        _wait_http(f"http://127.0.0.1:{self.node_ports[name]}/healthz", proc, name)
        while httpx.get(f"http://127.0.0.1:{self.node_ports[name]}/healthz").status_code != 200:
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def terminate(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGTERM)

    def ensure_running(self) -> None:
        for name in self.node_ports:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    proc.wait(timeout=60)
                self.start_node(name)
        self.wait_balanced()

    def wait_balanced(self) -> None:
        """Until HAProxy's health checks see every node up (it routes to none that is down)."""
        stats = f"http://127.0.0.1:{self.lb_port}/haproxy-stats;csv"
        for _ in range(300):
            try:
                text = httpx.get(stats, timeout=5).text
            except httpx.HTTPError:  # HAProxy not listening yet
                time.sleep(0.2)
                continue
            rows = [ln.split(",") for ln in text.splitlines()]
            lines = [",".join(r) for r in rows if len(r) > 2 and r[1] in self.node_ports]
            if len(lines) == len(self.node_ports) and all(",UP," in ln for ln in lines):
                return
            time.sleep(0.2)
        raise RuntimeError("HAProxy never saw every node up")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def start_cluster(nodes: tuple[str, ...] = ("a", "b")) -> Cluster:
    if not MODEL.exists():
        pytest.skip(f"the embedded GGUF is not prepared ({MODEL}): run `vocalis models prepare`")
    pytest.importorskip("xllamacpp")
    ensure("redis-server:redis-server", "haproxy:haproxy")
    database = asyncio.run(fresh_postgres_url())
    workdir = Path(tempfile.mkdtemp(prefix="vocalis-cluster-"))
    cluster = Cluster(
        workdir=workdir,
        redis=redis_url(),
        database=database,
        llm_port=free_port(),
        lb_port=free_port(),
        node_ports={name: free_port() for name in nodes},
    )
    try:
        llm = subprocess.Popen(
            [sys.executable, str(REPO / "scripts/llm_server.py"), "--port", str(cluster.llm_port)],
            stdout=open(workdir / "llm.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        cluster.procs["llm"] = llm
        _wait_http(f"http://127.0.0.1:{cluster.llm_port}/health", llm, "LLM server")
        for name in nodes:
            cluster.start_node(name)
        servers = "\n".join(
            f"    server {n} 127.0.0.1:{p} check inter 300ms fall 1 rise 1"
            for n, p in cluster.node_ports.items()
        )
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_CFG.format(port=cluster.lb_port, servers=servers)
            + "    stats enable\n    stats uri /haproxy-stats\n"
        )
        cluster.procs["haproxy"] = subprocess.Popen(
            ["haproxy", "-f", str(cfg), "-db"],
            stdout=open(workdir / "haproxy.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        cluster.wait_balanced()
    except BaseException:
        cluster.stop()
        raise
    return cluster

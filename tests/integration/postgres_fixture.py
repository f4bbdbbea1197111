"""A throwaway PostgreSQL for storage tests, started once per test process.

``scripts/ensure_postgres.sh`` installs Debian's postgresql when missing and starts a cluster as a
non-root user on a free port; each test then gets a fresh database. Tests skip, saying why, only
when no server can be had.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ensure_postgres.sh"

_server: dict[str, str] = {}


def _start() -> str:
    """The admin URL of the shared cluster; raises RuntimeError with the reason on failure."""
    if "url" in _server:
        return _server["url"]
    if "error" in _server:
        raise RuntimeError(_server["error"])
    workdir = tempfile.mkdtemp(prefix="vocalis-pg-")
    os.chmod(workdir, 0o755)  # the cluster runs as another user when tests run as root
    proc = subprocess.run(
        [str(SCRIPT), "start", f"{workdir}/pg"], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        _server["error"] = f"PostgreSQL unavailable: {proc.stderr.strip() or proc.returncode}"
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(_server["error"])
    _server["url"] = proc.stdout.strip().splitlines()[-1]

    def stop() -> None:
        subprocess.run([str(SCRIPT), "stop", f"{workdir}/pg"], capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
    return _server["url"]


async def _create_database(admin_url: str) -> str:
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def fresh_postgres_url() -> str:
    """A new empty database on the shared cluster, or ``pytest.skip`` with the reason."""
    try:
        admin = await asyncio.to_thread(_start)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(str(exc))
    return await _create_database(admin)


BACKENDS = ["sqlite", "postgresql"]


async def database_url_for(backend: str) -> str | None:
    """``None`` (SQLite in ``data_dir``) or a fresh PostgreSQL database URL."""
    if backend == "sqlite":
        return None
    return await fresh_postgres_url()

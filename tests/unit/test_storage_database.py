"""Engine set-up: URLs, SQLite durability pragmas, migrations, settings parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from vocalis.settings import Settings
from vocalis.storage import open_storage
from vocalis.storage.database import migrate, normalize_url


def test_urls_default_to_sqlite_in_data_dir_and_get_async_drivers(tmp_path: Path) -> None:
    assert normalize_url(None, tmp_path) == f"sqlite+aiosqlite:///{tmp_path / 'vocalis.db'}"
    assert normalize_url("postgresql://u:p@h:5432/db", tmp_path) == (
        "postgresql+asyncpg://u:p@h:5432/db"
    )
    assert normalize_url("postgresql+asyncpg://h/db", tmp_path) == "postgresql+asyncpg://h/db"
    assert normalize_url("sqlite:////x/y.db", tmp_path) == "sqlite+aiosqlite:////x/y.db"


async def test_sqlite_runs_wal_with_full_sync_and_migrates_once(tmp_path: Path) -> None:
    storage = await open_storage(Settings(data_dir=tmp_path, secret_key="k"))
    try:
        async with storage.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert await migrate(storage.engine) == 3
        async with storage.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version FROM vocalis_schema"))).all()
        assert [tuple(r) for r in rows] == [(3,)]
    finally:
        await storage.aclose()
    assert (tmp_path / "vocalis.db").exists()


def test_new_settings_have_safe_defaults_and_parse_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.database_url is None and defaults.secret_key is None
    assert defaults.http_tool_allowed_hosts == []
    assert defaults.http_tool_max_response_bytes == 8192
    assert defaults.rest_max_body_bytes == 1 << 20
    assert defaults.public_base_url is None and defaults.browser_tokens is False
    monkeypatch.setenv("VOCALIS_HTTP_TOOL_ALLOWED_HOSTS", "api.example.com, *.corp.example")
    assert Settings().http_tool_allowed_hosts == ["api.example.com", "*.corp.example"]

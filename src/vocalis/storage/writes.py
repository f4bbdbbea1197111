"""One place that opens write transactions.

SQLite allows one writer; a deferred transaction that reads and then writes can fail with
``SQLITE_BUSY`` instead of waiting when another connection committed in between. Writers in this
process therefore take an asyncio lock on SQLite (other processes are covered by busy_timeout).
PostgreSQL needs no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class WriteGate:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        guard: Any = self._lock if self._lock is not None else nullcontext()
        async with guard, self._engine.begin() as conn:
            yield conn

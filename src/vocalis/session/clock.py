"""Time as the engine sees it: a small injectable interface.

``RealClock`` reads the event loop's monotonic clock. ``FakeClock`` is virtual time for tests: a
sleeping task wakes only when the test calls :meth:`FakeClock.advance`, which moves time forward
timer by timer and lets the woken tasks run before the next one, so a 30 s grace window passes in
milliseconds and orderings are deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Unix epoch seconds (for ``timestamp`` fields and records)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time, advanced explicitly by tests."""

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1_790_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_offset - start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def settle(self, rounds: int = 30) -> None:
        """Let runnable tasks run until they block again (on the clock or on input)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each timer at its own instant."""
        target = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, fut = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not fut.done():
                fut.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()

"""The worker-thread bridge: backpressure pauses the producer, closing stops it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from vocalis.providers.embedded._threads import Cancelled, ThreadStream


def counting_producer(produced: list[int], stop_seen: threading.Event):
    def produce(emit: Callable[[int], None], cancelled: Cancelled) -> None:
        for i in range(50):
            if cancelled.is_set():
                stop_seen.set()
                return
            produced.append(i)
            emit(i)

    return produce


async def test_producer_stays_at_most_max_ahead_of_the_consumer() -> None:
    produced: list[int] = []
    stream = ThreadStream(counting_producer(produced, threading.Event()), "t", max_ahead=2)
    consumed = 0
    async for _ in stream:
        consumed += 1
        await asyncio.sleep(0.01)  # a slow consumer (speech synthesis)
        assert len(produced) - consumed <= 2 + 1
        if consumed == 10:
            break


async def test_closing_the_stream_stops_a_paused_producer() -> None:
    produced: list[int] = []
    stop_seen = threading.Event()
    stream = ThreadStream(counting_producer(produced, stop_seen), "t", max_ahead=1)
    async for item in stream:
        if item == 2:
            break
    assert await asyncio.to_thread(stop_seen.wait, 2)
    assert len(produced) < 10

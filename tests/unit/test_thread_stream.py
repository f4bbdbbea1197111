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


async def test_when_finished_waits_for_the_producer_not_the_consumer() -> None:
    """A consumer that stops early is gone at once; the producer's resource (an LLM slot)
    is handed back only when the producer itself has returned."""
    release = threading.Event()
    finished: list[str] = []

    def produce(emit: Callable[[int], None], cancelled: Cancelled) -> None:
        emit(1)
        release.wait(5)  # still inside the model when the consumer leaves

    stream: ThreadStream[int] = ThreadStream(produce, "t")
    stream.when_finished(lambda: finished.append("done"))
    async for _ in stream:
        break
    await asyncio.sleep(0.05)
    assert finished == []
    release.set()
    for _ in range(200):
        if finished:
            break
        await asyncio.sleep(0.01)
    assert finished == ["done"]
    stream.when_finished(lambda: finished.append("late"))  # already finished: called at once
    assert finished == ["done", "late"]


async def test_backlog_counts_what_the_consumer_has_not_taken() -> None:
    """The producer can see that its consumer is busy (a reply synthesising speech) and wait
    until everything it emitted has been taken: how the LLM stops and later continues."""
    seen: list[int] = []
    waited: list[bool] = []
    stream: ThreadStream[int]

    def produce(emit: Callable[[int], None], cancelled: Cancelled) -> None:
        emit(0)
        waited.append(stream.wait_taken())  # the consumer took 0 and is now busy with it
        emit(1)
        emit(2)
        seen.append(stream.backlog)
        waited.append(stream.wait_taken())
        seen.append(stream.backlog)

    stream = ThreadStream(produce, "t")
    items = []
    async for item in stream:
        if not items:
            await asyncio.sleep(0.1)  # busy (synthesising) while the producer goes on
        items.append(item)
    assert items == [0, 1, 2]
    assert seen == [2, 0]
    assert waited == [True, True]


async def test_wait_taken_returns_false_once_the_consumer_left() -> None:
    result: list[bool] = []
    stream: ThreadStream[int]

    def produce(emit: Callable[[int], None], cancelled: Cancelled) -> None:
        emit(1)
        emit(2)
        result.append(stream.wait_taken())

    stream = ThreadStream(produce, "t")
    async for _ in stream:
        break  # took one item of two, then left
    for _ in range(200):
        if result:
            break
        await asyncio.sleep(0.01)
    assert result == [False]

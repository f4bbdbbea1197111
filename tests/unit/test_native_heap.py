"""Handing freed native memory back: rate-limited, off the callers' path, on the idle worker."""

from __future__ import annotations

import asyncio
import threading

from vocalis.providers.embedded.native_heap import HeapTrimmer
from vocalis.providers.scheduling import Priority
from vocalis.providers.workers import InferenceWorker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_at_most_once_per_interval() -> None:
    calls: list[int] = []
    clock = FakeClock()
    trimmer = HeapTrimmer(interval=10.0, clock=clock, trim=lambda pad: calls.append(pad) or 1)
    trimmer.maybe_trim()
    trimmer.maybe_trim()
    clock.now += 9.9
    trimmer.maybe_trim()
    assert calls == [0]
    clock.now += 0.2
    trimmer.maybe_trim()
    assert calls == [0, 0] and trimmer.trims == 2


def test_a_failing_trim_never_reaches_the_worker() -> None:
    def broken(_: int) -> int:
        raise OSError("no")

    trimmer = HeapTrimmer(trim=broken)
    trimmer.maybe_trim()  # logged, not raised
    assert trimmer.trims == 0


def test_the_real_c_library_trims_when_it_can() -> None:
    trimmer = HeapTrimmer()
    trimmer.maybe_trim()
    assert trimmer.trims == (1 if trimmer.available else 0)


async def test_the_worker_runs_its_idle_hook_only_once_its_queue_is_empty() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def run(jobs: list[int]) -> list[int]:
        release.wait(5)
        seen.append(jobs)
        return jobs

    worker: InferenceWorker[int, int] = InferenceWorker("w", run)
    idle_after: list[int] = []
    worker.on_idle = lambda: idle_after.append(len(seen))
    first = asyncio.create_task(worker.submit(1, Priority.BACKGROUND))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(worker.submit(2, Priority.BACKGROUND))
    third = asyncio.create_task(worker.submit(3, Priority.BACKGROUND))
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(first, second, third) == [1, 2, 3]
    await asyncio.sleep(0.05)
    worker.close()
    # jobs 2 and 3 were waiting when job 1 finished: no housekeeping between them
    assert idle_after == [3]

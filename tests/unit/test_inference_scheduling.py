"""The shared workers' ordering policy and shells: priority order, batching, cancellation, lag."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vocalis.providers.scheduling import JobQueue, Priority
from vocalis.providers.workers import (
    FirstWords,
    InferenceWorker,
    SlotGate,
    node_lag,
    worker_lags,
)

FA, NA, TD, BG = (
    Priority.FIRST_AUDIO,
    Priority.NEXT_AUDIO,
    Priority.TURN_DECISION,
    Priority.BACKGROUND,
)


def drain(queue: JobQueue[str], max_batch: int = 1) -> list[list[str]]:
    out = []
    while len(queue):
        out.append([t.item for t in queue.pop_batch(max_batch)])
    return out


# ------------------------------------------------------------------------------ pure policy
def test_first_audio_then_next_audio_then_turn_decision_then_background_fifo_within_each() -> None:
    q: JobQueue[str] = JobQueue()
    for item, prio in [
        ("partial-a", BG),
        ("final-a", TD),
        ("later-sentence", BG),
        ("piece-running-dry-d", NA),
        ("first-piece-b", FA),
        ("final-b", TD),
        ("first-piece-c", FA),
    ]:
        q.push(item, prio, now=0.0)
    assert drain(q) == [
        ["first-piece-b"],
        ["first-piece-c"],
        ["piece-running-dry-d"],
        ["final-a"],
        ["final-b"],
        ["partial-a"],
        ["later-sentence"],
    ]


def test_a_batch_is_the_most_urgent_job_plus_waiting_jobs_with_its_key() -> None:
    q: JobQueue[str] = JobQueue()
    q.push("vad-1", BG, 0.0, batch_key="vad")
    q.push("final", TD, 0.0)
    q.push("vad-2", BG, 0.0, batch_key="vad")
    q.push("other-key", BG, 0.0, batch_key="x")
    q.push("vad-3", BG, 0.0, batch_key="vad")
    assert drain(q, max_batch=8) == [["final"], ["vad-1", "vad-2", "vad-3"], ["other-key"]]


def test_batches_respect_their_size_and_keyless_jobs_run_alone() -> None:
    q: JobQueue[str] = JobQueue()
    for i in range(5):
        q.push(f"v{i}", BG, 0.0, batch_key="vad")
    q.push("solo-1", BG, 0.0)
    q.push("solo-2", BG, 0.0)
    assert drain(q, max_batch=2) == [["v0", "v1"], ["v2", "v3"], ["v4"], ["solo-1"], ["solo-2"]]


def test_withdrawn_jobs_never_run_and_lag_is_the_oldest_wait() -> None:
    q: JobQueue[str] = JobQueue()
    assert q.lag(now=5.0) == 0.0
    old = q.push("old", BG, now=1.0)
    q.push("new", FA, now=4.0)
    assert q.lag(now=5.0) == pytest.approx(4.0)
    assert q.lag(now=5.0, upto=TD) == pytest.approx(1.0)  # only work callers wait on
    assert q.remove(old)
    assert not q.remove(old)
    assert q.lag(now=5.0) == pytest.approx(1.0)
    assert drain(q) == [["new"]]


# ------------------------------------------------------------------------------ worker shell
async def test_worker_runs_waiting_jobs_by_priority_and_batches_them() -> None:
    gate = threading.Event()
    calls: list[list[str]] = []

    def run(jobs: list[str]) -> list[str]:
        if jobs == ["block"]:
            gate.wait(5)
        calls.append(list(jobs))
        return [j.upper() for j in jobs]

    worker: InferenceWorker[str, str] = InferenceWorker("test-worker", run, max_batch=4)
    try:
        blocker = asyncio.create_task(worker.submit("block", BG))
        while worker.waiting():  # the thread took the blocker
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        later = [
            asyncio.create_task(worker.submit("p1", BG, batch_key="stt")),
            asyncio.create_task(worker.submit("final", TD)),
            asyncio.create_task(worker.submit("p2", BG, batch_key="stt")),
            asyncio.create_task(worker.submit("first", FA)),
        ]
        while worker.waiting() < 4:
            await asyncio.sleep(0.001)
        assert worker.lag() >= 0.0
        assert "test-worker" in worker_lags()
        gate.set()
        results = await asyncio.gather(blocker, *later)
        assert results == ["BLOCK", "P1", "FINAL", "P2", "FIRST"]
        assert calls == [["block"], ["first"], ["final"], ["p1", "p2"]]
        assert worker.batches == 4 and worker.jobs == 5
    finally:
        gate.set()
        worker.close()


async def test_a_cancelled_waiting_job_is_never_run_and_errors_reach_the_caller() -> None:
    gate = threading.Event()
    ran: list[str] = []

    def run(jobs: list[str]) -> list[str]:
        if jobs == ["block"]:
            gate.wait(5)
        if jobs == ["boom"]:
            raise ValueError("model failed")
        ran.extend(jobs)
        return jobs

    worker: InferenceWorker[str, str] = InferenceWorker("test-cancel", run)
    try:
        blocker = asyncio.create_task(worker.submit("block", BG))
        while worker.waiting():
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        doomed = asyncio.create_task(worker.submit("doomed", FA))
        while worker.waiting() < 1:
            await asyncio.sleep(0.001)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert worker.waiting() == 0
        gate.set()
        await blocker
        with pytest.raises(ValueError, match="model failed"):
            await worker.submit("boom", TD)
        assert await worker.submit("after", BG) == "after"
        assert ran == ["block", "after"]
    finally:
        gate.set()
        worker.close()


async def test_a_second_lane_runs_urgent_work_beside_a_running_job_never_background() -> None:
    """With two lanes, a final transcript starts while a partial is still running, a second
    partial waits for the first lane, and two finals run at once."""
    release = {name: threading.Event() for name in ("p1", "f1", "f2")}
    started: list[str] = []
    lock = threading.Lock()

    def run(jobs: list[str]) -> list[str]:
        with lock:
            started.extend(jobs)
        for job in jobs:
            if job in release:
                release[job].wait(5)
        return jobs

    worker: InferenceWorker[str, str] = InferenceWorker("test-lanes", run, lanes=2)

    async def until_started(count: int) -> None:
        for _ in range(2000):
            with lock:
                if len(started) >= count:
                    return
            await asyncio.sleep(0.001)
        raise AssertionError(f"only {started} started")

    try:
        p1 = asyncio.create_task(worker.submit("p1", BG))
        await until_started(1)
        p2 = asyncio.create_task(worker.submit("p2", BG))
        await asyncio.sleep(0.05)
        assert started == ["p1"] and worker.waiting() == 1  # p2 may not take the idle lane 1
        f1 = asyncio.create_task(worker.submit("f1", TD))
        await until_started(2)  # f1 on the second lane, beside p1
        assert started == ["p1", "f1"] and worker.waiting() == 1
        release["p1"].set()
        await until_started(3)
        assert started[2] == "p2"
        f2 = asyncio.create_task(worker.submit("f2", TD))
        await until_started(4)  # f2 on the first lane while f1 still holds the second
        assert started[3] == "f2" and not f1.done()
        release["f1"].set()
        release["f2"].set()
        assert await asyncio.gather(p1, p2, f1, f2) == ["p1", "p2", "f1", "f2"]
        assert worker.jobs == 4
    finally:
        for event in release.values():
            event.set()
        worker.close()


def test_a_worker_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="lane"):
        InferenceWorker("test-no-lane", lambda jobs: jobs, lanes=0)


async def test_background_work_holds_back_while_a_reply_waits_for_its_first_words() -> None:
    """A partial transcript waits while another model produces a reply's first words; a final
    transcript does not; the partial runs as soon as the words came."""
    words = FirstWords()
    ran: list[str] = []

    def run(jobs: list[str]) -> list[str]:
        ran.extend(jobs)
        return jobs

    worker: InferenceWorker[str, str] = InferenceWorker(
        "test-hold", run, hold_background=words.__bool__, max_hold=30.0
    )
    try:
        with words.awaited() as arrived:
            partial = asyncio.create_task(worker.submit("partial", BG))
            assert await worker.submit("final", TD) == "final"  # not held
            # nor is a piece whose listener is about to run out of audio
            assert await worker.submit("piece", NA) == "piece"
            await asyncio.sleep(0.1)
            assert ran == ["final", "piece"] and not partial.done()
            arrived()
            assert not words
            assert await partial == "partial"
        assert ran == ["final", "piece", "partial"]
    finally:
        worker.close()


async def test_a_held_job_runs_after_the_longest_hold_whatever_else_waits() -> None:
    words = FirstWords()
    worker: InferenceWorker[str, str] = InferenceWorker(
        "test-hold-max", lambda jobs: jobs, hold_background=words.__bool__, max_hold=0.05
    )
    try:
        with words.awaited():
            assert await asyncio.wait_for(worker.submit("partial", BG), 5) == "partial"
            assert words  # still waiting: the job ran because the hold is bounded
        assert not words  # leaving the block counts the reply as done
    finally:
        worker.close()


def test_a_thread_held_for_first_words_goes_on_once_they_came() -> None:
    """An LLM request stepping aside blocks its thread while a reply waits, and no longer."""
    words = FirstWords()
    released = threading.Event()
    held: list[float] = []
    with words.awaited() as arrived:
        worker = threading.Thread(target=lambda: (held.append(words.hold(30.0)), released.set()))
        worker.start()
        assert not released.wait(0.1)  # still held: the reply has not had its first piece
        arrived()
        assert released.wait(10.0)
    worker.join()
    assert held[0] < 30.0


def test_a_hold_is_bounded_and_stops_when_told() -> None:
    words = FirstWords()
    stop = threading.Event()
    with words.awaited():
        assert words.hold(0.05) >= 0.05  # ran out: the reply still waits
        stop.set()
        assert words.hold(30.0, stop) < 30.0
    assert words.hold(30.0) == pytest.approx(0.0, abs=0.05)  # nobody waits: no hold at all


def test_a_spell_of_waiting_replies_lasts_until_none_waits() -> None:
    """Overlapping waits are one spell (a request steps aside once in it); the next wait after
    a quiet moment is a new one."""
    words = FirstWords()
    with words.awaited():
        first = words.spell
        with words.awaited():
            assert words.spell == first and words.pending == 2
        assert words.spell == first
    assert not words
    with words.awaited():
        assert words.spell == first + 1


async def test_slot_gate_gives_a_freed_slot_to_the_most_urgent_waiter() -> None:
    gate = SlotGate("test-llm", slots=2)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, prio: Priority) -> None:
        async with gate.slot(prio):
            order.append(name)
            await release.wait()

    holders = [asyncio.create_task(hold(n, BG)) for n in ("a", "b")]
    await asyncio.sleep(0)
    assert gate.busy == 2
    waiters = [
        asyncio.create_task(hold("prefill", BG)),
        asyncio.create_task(hold("reply", FA)),
        asyncio.create_task(hold("cancelled", FA)),
    ]
    await asyncio.sleep(0)
    waiters[2].cancel()
    await asyncio.sleep(0)
    assert node_lag() >= 0.0
    release.set()
    await asyncio.gather(*holders, *waiters[:2])
    assert order == ["a", "b", "reply", "prefill"]
    assert gate.busy == 0
    gate.close()

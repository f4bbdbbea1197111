"""Shared model workers: the thin threaded/async shells around :mod:`.scheduling`'s queue.

* :class:`InferenceWorker` — one daemon thread per model. Sessions ``await submit(job,
  priority)``; the thread takes the most urgent job (with others of the same ``batch_key``) and
  runs them as one call. Calls no longer overlap on the model, so on 2 cores one session's
  final transcript is not slowed by three others' partials, and the order follows the policy.
  A model that can run two calls at once may get more *lanes* (threads on the same queue); the
  extra lanes take only work a caller waits on, never background work.
* :class:`SlotGate` — for a model that runs several requests at once itself (llama.cpp's
  parallel slots with continuous batching): at most ``slots`` requests are inside; the next
  slot goes to the most urgent waiter, not the earliest.

Both report their backlog (:meth:`lag`: how long the oldest waiting job a caller is waiting on —
a reply's first audio or a turn's decision — has waited; partials and later sentences piling up
are expected under load and do not count). The node's load signal for admission
(:func:`node_lag`) is the worst backlog of the live workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from vocalis.providers.scheduling import JobQueue, Priority

J = TypeVar("J")
R = TypeVar("R")

Clock = Callable[[], float]
URGENT = Priority.TURN_DECISION  # backlog of this priority or more urgent is the load signal


class _Lagging(Protocol):
    name: str

    def lag(self) -> float: ...


_LIVE: weakref.WeakSet[_Lagging] = weakref.WeakSet()


class FirstWords:
    """How many replies are waiting for their first spoken piece from the LLM, node-wide.

    A reply counts from the moment its request is inside a slot until the reply takes its
    first piece away to be spoken (it stops reading the model to synthesise) or the request
    ends. While one waits, the other work on the cores holds back for a moment:

    * background jobs of the other models (partial transcripts, later sentences of replies
      already speaking): on 2 cores a Whisper partial or a Piper sentence running beside the
      LLM's prompt evaluation made that reply's first words late (traced with 4 callers: a
      reply's first chunk 0.29 s median but up to 2.2 s after its slot, with partial decodes
      running throughout);
    * the other LLM requests whose replies are already speaking (:meth:`hold`): llama.cpp
      advances every active sequence in each decode step, on one thread ~35 ms a step alone
      but ~90-130 ms with three (traced with 4 callers), so a first piece of six tokens
      written beside two speaking replies took ~0.4 s longer. 4 callers at once
      (``bench_load --callers 4 --burst 4 --turns 4``), 8 rows each way, alternating, on an
      AVX2-only host (LLM alone 50 ms a token on one thread): voice-to-voice over the 128 turns
      P50 2.06 / P90 3.00 / P95 3.26 s with it, 2.18 / 3.37 / 3.55 s without.

    The held work has slack: a partial is replaced by the next one; a later sentence has the
    playing audio ahead of it (one whose listener is about to run out is not background work).
    Counted and read from any thread (a lock guards the count).

    Measured and not done: replies writing their first pieces one at a time, in arrival order
    (a reply waited, up to 0.5 s, while another was counted here, so that its prompt was not
    evaluated in the same decode steps as the other's first tokens). 4 callers at once
    (``bench_load --callers 4 --burst 4 --turns 4``, alternating, ``--pool``, AVX2-only host,
    2026-12-04): v2v P50 1.37 / P90 2.28 / P95 2.83 s over 64 turns against 1.42 / 2.41 /
    2.65 s over 96; the first piece came sooner after the first token (P95 540 against 920
    ms) but the first token later after the final (P95 1178 against 893 ms): the wait moved
    from one step to the other.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.pending = 0
        #: Bumped each time the count leaves zero: one busy spell of waiting replies, so a
        #: request that held back once does not hold back again in the same spell.
        self.spell = 0

    def __bool__(self) -> bool:
        return self.pending > 0

    @contextlib.contextmanager
    def awaited(self) -> Iterator[Callable[[], None]]:
        """Count one reply as waiting; call the yielded function when its first piece came
        (or leave the block: whichever is first)."""
        done = False

        def arrived() -> None:
            nonlocal done
            with self._changed:
                if not done:
                    done = True
                    self.pending -= 1
                    self._changed.notify_all()

        with self._changed:
            if not self.pending:
                self.spell += 1
            self.pending += 1
        try:
            yield arrived
        finally:
            arrived()

    def hold(self, longest: float, stop: threading.Event | None = None) -> float:
        """Block the calling thread while replies wait (at most ``longest`` seconds, or until
        ``stop`` is set); returns how long it held."""
        start = time.monotonic()
        with self._changed:
            while self.pending and not (stop is not None and stop.is_set()):
                left = longest - (time.monotonic() - start)
                if left <= 0:
                    break
                self._changed.wait(timeout=min(left, _HOLD_POLL_S))  # polls ``stop``
        return time.monotonic() - start


FIRST_WORDS = FirstWords()
#: The longest a background job, or a speaking reply's LLM request, is held back for other
#: replies' first pieces (then it runs anyway).
MAX_HOLD_S = 0.6
_HOLD_POLL_S = 0.02  # how often a held worker, or a held request's ``stop``, is looked at again


def node_lag() -> float:
    """The worst backlog (seconds) among this process's live workers; 0 when none exist."""
    return max((w.lag() for w in list(_LIVE)), default=0.0)


def worker_lags() -> dict[str, float]:
    """Backlog of each live worker by name (the worst, when names repeat)."""
    lags: dict[str, float] = {}
    for worker in list(_LIVE):
        lags[worker.name] = max(lags.get(worker.name, 0.0), worker.lag())
    return lags


@dataclass
class _Pending(Generic[J, R]):
    job: J
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[R], result: R | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class InferenceWorker(Generic[J, R]):
    """Runs ``run(jobs) -> results`` (same length, same order) on ``lanes`` threads, most urgent
    first.

    Lane 0 takes any job; the other lanes take only jobs more urgent than ``BACKGROUND``, so a
    final transcript never waits behind a partial that is already running, and background work
    never holds more than one lane. ``run`` must then be safe to call from several threads.

    Measured and not done: background work on a lane of its own whose thread is nicer to the
    OS scheduler (``setpriority`` +5), so a running partial or later sentence yields the cores
    to what callers wait on: Whisper's partials on a second copy of the model whose
    CTranslate2 worker inherited the niceness from the lane that loaded it, Piper's later
    sentences beside first pieces (espeak-ng under a lock). 4 callers at once (``bench_load
    --callers 4 --burst 4 --turns 4``, alternated runs, AVX2-only host): in a first version
    P50 1.69 / P95 2.49 s over 96 turns against 1.69 / 2.74 s over 128, the final 573 against
    640 ms; in the version written for the tree, P50 1.73 / P95 2.62 s over 96 turns against
    1.58 / 2.63 s over 64, and replies' audio ran dry 15 times a run (19.6 s of silence)
    against 14 (20.3 s) (``--pool``). No steady gain, for a second model (+90 MB, the median
    of the rows' printed RSS) and a thread more per model. Niceness of every Whisper and Piper
    thread instead made the finals later (738 against 640 ms) and v2v P50 1.78 / P95 3.04 s.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[list[J]], list[R]],
        *,
        max_batch: int = 1,
        clock: Clock = time.monotonic,
        hold_background: Callable[[], bool] | None = None,
        max_hold: float = MAX_HOLD_S,
        lanes: int = 1,
    ) -> None:
        if lanes < 1:
            raise ValueError("a worker needs at least one lane")
        self.name = name
        self._run = run
        self._max_batch = max_batch
        self._lanes = lanes
        self._clock = clock
        #: While this says so, a BACKGROUND job at the head of the queue waits (up to
        #: ``max_hold`` seconds); more urgent jobs run as always.
        self._hold_background = hold_background
        self._max_hold = max_hold
        self._queue: JobQueue[_Pending[J, R]] = JobQueue()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.batches = 0  # model calls made (a batch counts once)
        self.jobs = 0
        #: Called on the worker's thread when it runs out of jobs: housekeeping that nobody
        #: should wait for (the embedded stack hands freed native memory back here).
        self.on_idle: Callable[[], None] | None = None
        _LIVE.add(self)

    def lag(self) -> float:
        with self._cond:
            return self._queue.lag(self._clock(), URGENT)

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    async def submit(self, job: J, priority: Priority, batch_key: str | None = None) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"worker {self.name} is closed")
            ticket = self._queue.push(
                _Pending(job, future, loop), priority, self._clock(), batch_key
            )
            if not self._threads:
                for lane in range(self._lanes):
                    thread = threading.Thread(
                        target=self._loop, args=(lane,), name=f"{self.name}-{lane}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
            # every lane: one woken alone may be a lane that cannot take this job
            self._cond.notify_all()
        try:
            return await future
        except asyncio.CancelledError:
            with self._cond:
                self._queue.remove(ticket)  # not started yet: it never will be
            raise

    def close(self) -> None:
        """Stop the thread after the job it is running; queued jobs are dropped."""
        with self._cond:
            self._closed = True
            dropped = []
            while len(self._queue):
                dropped += self._queue.pop_batch()
            self._cond.notify_all()
        for ticket in dropped:
            p = ticket.item
            with contextlib.suppress(RuntimeError):
                p.loop.call_soon_threadsafe(p.future.cancel)
        _LIVE.discard(self)

    def _loop(self, lane: int) -> None:
        while True:
            with self._cond:
                idle = not len(self._queue)
            if lane == 0 and idle and self.on_idle is not None and not self._closed:
                self.on_idle()
            with self._cond:
                while not self._closed and not self._ready(lane):
                    # a held job is looked at again; nothing else changes until a submit
                    held = lane == 0 and bool(self._queue)
                    self._cond.wait(timeout=_HOLD_POLL_S if held else None)
                if self._closed:
                    return
                batch = self._queue.pop_batch(self._max_batch)
                if len(self._queue):
                    self._cond.notify_all()  # another lane may take what is left
            pending = [t.item for t in batch]
            results: list[R] | None = None
            error: BaseException | None = None
            try:
                results = self._run([p.job for p in pending])
            except BaseException as exc:  # handed to every waiter of the batch
                error = exc
            with self._cond:
                self.batches += 1
                self.jobs += len(pending)
            for i, p in enumerate(pending):
                result = results[i] if results is not None else None
                # RuntimeError: that session's loop is closed, nobody is waiting any more
                with contextlib.suppress(RuntimeError):
                    p.loop.call_soon_threadsafe(_settle, p.future, result, error)

    def _ready(self, lane: int) -> bool:
        """Lane ``lane`` may start a job now (called with the lock held)."""
        head = self._queue.head()
        if head is None:
            return False
        if lane > 0 and head.priority >= Priority.BACKGROUND:
            return False
        if head.priority < Priority.BACKGROUND or self._hold_background is None:
            return True
        if self._clock() - head.submitted >= self._max_hold:
            return True
        return not self._hold_background()


class SlotGate:
    """At most ``slots`` holders at once; a freed slot goes to the most urgent waiter.

    Lives on one event loop (no threads): the model behind it runs its own threads.
    """

    def __init__(self, name: str, slots: int, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.slots = slots
        self._free = slots
        self._clock = clock
        self._queue: JobQueue[asyncio.Future[None]] = JobQueue()
        _LIVE.add(self)

    def lag(self) -> float:
        return self._queue.lag(self._clock(), URGENT)

    @property
    def busy(self) -> int:
        return self.slots - self._free

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: Priority) -> None:
        """Wait for a slot; every successful ``acquire`` needs exactly one :meth:`release`."""
        if self._free > 0 and not len(self._queue):
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ticket = self._queue.push(future, priority, self._clock())
        try:
            await future
        except asyncio.CancelledError:
            if not self._queue.remove(ticket) and future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        self._release()

    def _release(self) -> None:
        while len(self._queue):
            (ticket,) = self._queue.pop_batch()
            if not ticket.item.done():
                ticket.item.set_result(None)  # the slot passes straight to this waiter
                return
        self._free += 1

    def close(self) -> None:
        _LIVE.discard(self)

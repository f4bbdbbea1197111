"""Shared model workers: the thin threaded/async shells around :mod:`.scheduling`'s queue.

* :class:`InferenceWorker` — one daemon thread per model. Sessions ``await submit(job,
  priority)``; the thread takes the most urgent job (with others of the same ``batch_key``) and
  runs them as one call. Calls no longer overlap on the model, so on 2 cores one session's
  final transcript is not slowed by three others' partials, and the order follows the policy.
  A model that can run two calls at once may get more *lanes* (threads on the same queue); the
  extra lanes take only work a caller waits on, never background work. Background work may
  instead get a lane of its own whose thread is nicer to the OS scheduler, so that once it
  runs it still gives way (``background_nice``).
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
import os
import sys
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
    playing audio ahead of it. Counted and read from any thread (a lock guards the count).
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


def lower_priority(by: int) -> bool:
    """Make the calling thread ``by`` steps nicer to the OS scheduler; False where it cannot.

    On Linux niceness belongs to each thread (``setpriority`` on its id), and threads the
    thread starts later inherit it (CTranslate2's workers, when it loads a model). Raising
    one's own niceness needs no privilege; lowering it back would, so a thread is lowered
    once, for good, and only threads that do nothing else are lowered.
    """
    if not sys.platform.startswith("linux"):  # elsewhere the call would name a process
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError:  # the kernel said no
        return False
    return True


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

    With ``background_nice`` set, background work gets a lane of its own instead (one more
    thread, the last lane), run that much nicer to the OS scheduler (:func:`lower_priority`),
    and every other lane takes only urgent work. A background job that is running then yields
    the cores to what callers wait on (the LLM writing a reply's first words, a final
    transcript, a first piece's synthesis) rather than sharing them evenly: the queue orders
    work before it starts, the OS priority while it runs.
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
        background_nice: int | None = None,
    ) -> None:
        if lanes < 1:
            raise ValueError("a worker needs at least one lane")
        self.name = name
        self._run = run
        self._max_batch = max_batch
        self._background_nice = background_nice
        #: The background lane's index (after the urgent lanes), or None: lane 0 takes it.
        self._background_lane = lanes if background_nice is not None else None
        self._lanes = lanes + (background_nice is not None)
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
        background = lane == self._background_lane
        if background and self._background_nice:
            lower_priority(self._background_nice)
        while True:
            with self._cond:
                idle = not len(self._queue)
            if lane == 0 and idle and self.on_idle is not None and not self._closed:
                self.on_idle()
            with self._cond:
                while not self._closed and not self._ready(lane):
                    # a held job is looked at again; nothing else changes until a submit
                    holder = 0 if self._background_lane is None else self._background_lane
                    held = lane == holder and bool(self._queue)
                    self._cond.wait(timeout=_HOLD_POLL_S if held else None)
                if self._closed:
                    return
                batch = self._queue.pop_batch(
                    self._max_batch, Priority.BACKGROUND if background else None
                )
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
        background_lane = self._background_lane
        if lane == background_lane:
            head = self._queue.head(Priority.BACKGROUND)
        else:
            head = self._queue.head()
        if head is None:
            return False
        urgent_only = lane > 0 or background_lane is not None
        if lane != background_lane and urgent_only and head.priority >= Priority.BACKGROUND:
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

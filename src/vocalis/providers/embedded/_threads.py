"""Helpers shared by the embedded providers: bounded onnxruntime sessions and a bridge from a
producer running in a worker thread to an async iterator."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Generic, TypeVar

import onnxruntime as ort

T = TypeVar("T")


def onnx_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with a fixed thread budget, so models do not fight over the 2 cores.

    The CPU arena is kept (onnxruntime's default) even for Piper, whose input length changes
    with every sentence: shrinking it after each run saved ~100 MB over 240 sentences
    (447 → 355 MB) but made synthesis 15-20 % slower (RTF 0.053 → 0.061-0.065, quiet host),
    and a reply's first audio matters more than that memory.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Cancelled(threading.Event):
    """Set when the consumer stopped listening; producers check it between steps."""


class ThreadStream(Generic[T]):
    """Runs ``produce(emit, cancelled)`` in its own daemon thread and yields what it emits.

    Closing the async iterator (or cancelling the task consuming it) sets ``cancelled`` so the
    producer stops at its next check; the consumer never waits for the thread to finish. A
    dedicated thread (not the default executor) keeps long generations from starving the
    short VAD/turn calls that use ``asyncio.to_thread``.

    The producer can see how far its consumer lags (:attr:`backlog`) and wait for it
    (:meth:`wait_taken`): the LLM stops a request while its reply is busy and continues it
    later, instead of blocking inside llama.cpp (which would keep decoding regardless).
    """

    def __init__(
        self,
        produce: Callable[[Callable[[T], None], Cancelled], None],
        name: str,
        max_ahead: int = 0,
    ):
        self._produce = produce
        self._name = name
        self._max_ahead = max_ahead  # > 0: the producer blocks this many items ahead
        self._untaken = 0  # items emitted that the consumer has not taken yet
        self._taken = threading.Condition()
        self.cancelled = Cancelled()
        self._finished = threading.Event()
        self._on_finish: list[Callable[[], None]] = []
        self._finish_lock = threading.Lock()

    def when_finished(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the producer's thread) once ``produce`` has returned, or now
        if it already has, or it never started. The consumer may stop listening long before
        the producer notices: whoever shares a resource with it waits for this."""
        with self._finish_lock:
            if not self._finished.is_set():
                self._on_finish.append(callback)
                return
        callback()

    def _finish(self) -> None:
        with self._finish_lock:
            self._finished.set()
            callbacks, self._on_finish = self._on_finish, []
        for callback in callbacks:
            callback()

    @property
    def backlog(self) -> int:
        """Items emitted that the consumer has not taken yet: how far it lags the producer."""
        with self._taken:
            return self._untaken

    def wait_taken(self) -> bool:
        """Block the producer until the consumer has taken every item emitted so far; False
        if the consumer stopped listening instead."""
        with self._taken:
            while self._untaken and not self.cancelled.is_set():
                self._taken.wait(timeout=0.05)  # polls ``cancelled``, which has no condition
            return not self.cancelled.is_set()

    def _took(self) -> None:
        with self._taken:
            self._untaken -= 1
            self._taken.notify_all()

    async def __aiter__(self) -> AsyncIterator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[T | _End] = asyncio.Queue()

        def emit(item: T) -> None:
            with self._taken:
                while 0 < self._max_ahead <= self._untaken and not self.cancelled.is_set():
                    self._taken.wait(timeout=0.05)
                if self.cancelled.is_set():
                    return
                self._untaken += 1
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            error: BaseException | None = None
            try:
                self._produce(emit, self.cancelled)
            except BaseException as exc:
                error = exc
            # RuntimeError: the loop is already closed, so nobody is listening.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, _End(error))
            self._finish()

        started = False
        try:
            threading.Thread(target=run, name=self._name, daemon=True).start()
            started = True
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                self._took()
                yield item
        finally:
            self.cancelled.set()
            if not started:
                self._finish()

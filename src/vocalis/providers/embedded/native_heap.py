"""Giving the models' freed native memory back to the operating system.

The embedded models allocate outside Python: onnxruntime tensors for every VAD batch and Piper
sentence, CTranslate2 buffers for every Whisper call, each in the glibc arena of the worker
thread that runs it. Sizes change with every call (a sentence's length, a batch's width), so
freed blocks rarely fit the next request exactly, and glibc keeps the freed pages mapped for
reuse. Most of the soak's RSS growth turned out to be ended sessions waiting for Python's
garbage collector (``SessionManager._collect_ended``); this is the native half, and its share
was not measured on its own (a 5-minute soak with it and without the collector fix: +19 %
against +32 % before, within the host's noise of other changes made at the same time).

``malloc_trim(0)`` hands every arena's free pages back. It is cheap (milliseconds) but takes
each arena's lock, so it runs where nobody waits for it: on a model worker's thread, just as
the worker runs out of jobs, and at most once per ``interval`` seconds across all workers.
On a C library without ``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Rate-limited ``malloc_trim``, safe to call from any thread."""

    def __init__(
        self,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        trim: Callable[[int], int] | None = None,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._trim = trim if trim is not None else _load_malloc_trim()  # tests pass their own
        self._lock = threading.Lock()
        self._last = float("-inf")
        self.trims = 0  # how many times memory was handed back (tests)

    @property
    def available(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> None:
        """Trim unless another thread is trimming or one did within ``interval`` seconds."""
        if self._trim is None or not self._lock.acquire(blocking=False):
            return
        try:
            now = self._clock()
            if now - self._last < self.interval:
                return
            self._last = now
            self._trim(0)
            self.trims += 1
        except Exception:  # never let housekeeping fail a model worker
            log.debug("malloc_trim failed", exc_info=True)
        finally:
            self._lock.release()

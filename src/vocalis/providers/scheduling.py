"""Which inference job runs next: the pure ordering policy behind the shared model workers.

Every session submits its model work (a final transcript, a partial, a reply's first sentence…)
to one worker per model instead of calling the model on its own; on 2 cores, N sessions calling
at once only made every call N times slower. The worker asks this queue what to run next, so the
rule is written once, here, without threads or clocks (time is passed in), and tested as plain
calls.

The order, from what a caller is waiting for:

1. ``FIRST_AUDIO`` — work that stands between a finished turn and the first sound of the reply
   (a reply's LLM request, its first spoken piece). Silence after the user stops is what callers
   notice most.
2. ``NEXT_AUDIO`` — work that stands between a speaking reply and a gap in it: a piece whose
   listener is about to run out of audio.
3. ``TURN_DECISION`` — the final transcript and the turn model's verdict that decide whether a
   turn ended (a turn that cannot end cannot be answered).
4. ``BACKGROUND`` — everything else: partial transcripts, later sentences of a reply already
   speaking with audio to spare (the playing audio is their slack), prompt prefills.

Within a priority, first come first served. A job may carry a ``batch_key``: jobs with the same
key can run as one model call (VAD frames of many sessions), so the queue hands out the most
urgent job together with the next waiting jobs that share its key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Priority(IntEnum):
    """Lower runs first."""

    FIRST_AUDIO = 0
    NEXT_AUDIO = 1
    TURN_DECISION = 2
    BACKGROUND = 3


#: The priority of the model work started in this context, where a provider's interface has
#: no place for one (``TTS.synthesize(text, voice)``): the session knows what a caller waits
#: for, the provider does not. A reply sets it around each piece it has synthesised; unset
#: (a warm-up, a benchmark calling the voice itself), the work is ``FIRST_AUDIO``.
WORK_PRIORITY: ContextVar[Priority] = ContextVar(
    "vocalis_work_priority", default=Priority.FIRST_AUDIO
)


@contextlib.contextmanager
def work_priority(priority: Priority) -> Iterator[None]:
    """Model work started inside the block runs at ``priority`` (see :data:`WORK_PRIORITY`)."""
    token = WORK_PRIORITY.set(priority)
    try:
        yield
    finally:
        WORK_PRIORITY.reset(token)


@dataclass(order=True)
class Ticket(Generic[T]):
    """One queued job; tickets sort by (priority, arrival)."""

    priority: Priority
    seq: int
    submitted: float = field(compare=False)
    batch_key: str | None = field(compare=False)
    item: T = field(compare=False)


class JobQueue(Generic[T]):
    """Queued jobs of one model, in the order they should run.

    Queues stay short (a few jobs per live session), so a sorted list beats a heap for
    clarity: removal of a cancelled job is a plain ``list.remove``.
    """

    def __init__(self) -> None:
        self._waiting: list[Ticket[T]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def push(
        self, item: T, priority: Priority, now: float, batch_key: str | None = None
    ) -> Ticket[T]:
        self._seq += 1
        ticket = Ticket(priority, self._seq, now, batch_key, item)
        # insert keeping order; new tickets have the highest seq, so scan from the end
        i = len(self._waiting)
        while i > 0 and self._waiting[i - 1] > ticket:
            i -= 1
        self._waiting.insert(i, ticket)
        return ticket

    def remove(self, ticket: Ticket[T]) -> bool:
        """Withdraw a job that has not started (its caller gave up); False if already taken."""
        try:
            self._waiting.remove(ticket)
        except ValueError:
            return False
        return True

    def head(self) -> Ticket[T] | None:
        """The job that would run next, left in the queue."""
        return self._waiting[0] if self._waiting else None

    def pop_batch(self, max_batch: int = 1) -> list[Ticket[T]]:
        """The most urgent job, and up to ``max_batch - 1`` more sharing its ``batch_key``
        (most urgent first). A job without a key always runs alone."""
        if not self._waiting:
            return []
        head = self._waiting.pop(0)
        batch = [head]
        if head.batch_key is None or max_batch <= 1:
            return batch
        rest: list[Ticket[T]] = []
        for ticket in self._waiting:
            if len(batch) < max_batch and ticket.batch_key == head.batch_key:
                batch.append(ticket)
            else:
                rest.append(ticket)
        self._waiting = rest
        return batch

    def lag(self, now: float, upto: Priority = Priority.BACKGROUND) -> float:
        """How long the oldest waiting job of priority ``upto`` or more urgent has waited:
        the worker's backlog, in seconds."""
        waits = [now - t.submitted for t in self._waiting if t.priority <= upto]
        return max(0.0, max(waits, default=0.0))

    def waiting(self, priority: Priority | None = None) -> int:
        if priority is None:
            return len(self._waiting)
        return sum(1 for t in self._waiting if t.priority == priority)

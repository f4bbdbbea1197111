"""The reply scheduler (§12): the only owner of the reply queue, the current reply and the
reply prepared ahead of a turn's commit.

Replies are planned (:class:`~vocalis.session.reply.ReplyPlan`, no ids), queued, and started one
at a time when the floor is free; a started reply gets its ids and a record for the timeline.
What happens to a reply that nobody heard yet when it is preempted is the plan's own rule
(:meth:`ReplyPlan.survives`). The scheduler asks its host (the session) whether the floor is free
and tells it when a reply becomes audible and when it closes; it never touches listening or tools.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vocalis import ids
from vocalis.protocol import server_events as ev
from vocalis.session.clock import Clock
from vocalis.session.history import History
from vocalis.session.reply import Preemption, Reply, ReplyPlan
from vocalis.session.timeline import ReplyRecord
from vocalis.session.tools import MAX_TOOL_ROUNDS

log = logging.getLogger(__name__)


class SchedulerHost(Protocol):
    """What the scheduler needs from its session."""

    def emit(self, event: ev.ServerEvent) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    @property
    def running(self) -> bool:
        """The session's task group is up, so replies can run."""

    @property
    def floor_free(self) -> bool:
        """The session is attached and no user turn is open: a reply may start."""

    @property
    def hold_active(self) -> bool:
        """A ``hold`` tool call is pending (§13.5): only requested replies may start."""

    def build_reply(
        self, plan: ReplyPlan, *, tools: bool, pending_user_text: str | None = None
    ) -> Reply: ...

    def reply_audible(self, reply: Reply) -> None:
        """The reply has started (ids allocated): the agent now holds the floor."""

    def reply_closed(self, reply: Reply) -> None:
        """The reply ended, completed or interrupted."""

    def calls_cancelled(self, reply: Reply) -> None:
        """An interrupted reply's pending tool calls must be cancelled."""


@dataclass
class Speculation:
    """A reply generated ahead of the turn's commit, behind its gate."""

    text: str
    reply: Reply
    task: asyncio.Task[None]


class ReplyScheduler:
    def __init__(self, host: SchedulerHost, clock: Clock, history: History) -> None:
        self._host = host
        self._clock = clock
        self._history = history
        self._queue: deque[ReplyPlan] = deque()
        self.current: Reply | None = None
        self._task: asyncio.Task[None] | None = None
        self._spec: Speculation | None = None
        self._records: dict[str, ReplyRecord] = {}
        self.closed_records: list[ReplyRecord] = []  # the timeline's turns, in order
        self.tool_rounds = 0  # consecutive follow-ups since the user last spoke (§13.2)

    # ------------------------------------------------------------------ queries
    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self._queue)

    def queued(self, trigger: str) -> int:
        return sum(1 for p in self._queue if p.trigger == trigger)

    def knows(self, reply_id: str) -> bool:
        return reply_id in self._records

    @property
    def any_started(self) -> bool:
        return bool(self._records)

    @property
    def tools_allowed(self) -> bool:
        return self.tool_rounds < MAX_TOOL_ROUNDS

    def queued_plans(self) -> list[ReplyPlan]:
        """The replies waiting, in order (for a checkpoint)."""
        return list(self._queue)

    def restore_carrier(self, reply: Reply, started_wall: float) -> None:
        """A reply that ran on another node and whose tool calls are still pending: known
        again, so their results make the one follow-up of §13.2 (its turn is already in the
        timeline, so it is not added to ``closed_records``)."""
        assert reply.reply_id is not None
        record = ReplyRecord(reply, started_wall, status="completed")
        self._records[reply.reply_id] = record

    # ------------------------------------------------------------------ queue
    def enqueue(self, plan: ReplyPlan) -> None:
        self._queue.append(plan)

    def user_spoke(self) -> None:
        self.tool_rounds = 0

    def start_next(self) -> None:
        """Start the next queued reply if the floor is free and nothing else is running."""
        host = self._host
        if self.current is not None or not host.running or not host.floor_free:
            return
        plan = self._next_plan()
        if plan is None:
            return
        reply = host.build_reply(plan, tools=self.tools_allowed)
        self.current = reply
        self._task = host.spawn(self._run(reply))

    def _next_plan(self) -> ReplyPlan | None:
        if not self._queue:
            return None
        if self._host.hold_active:
            for plan in self._queue:
                if plan.trigger == "reply_create":
                    self._queue.remove(plan)
                    return plan
            return None
        return self._queue.popleft()

    def followup_if_settled(self, reply_id: str) -> None:
        """Queue exactly one follow-up once every call of a reply is resolved (§13.2)."""
        rec = self._records.get(reply_id)
        if rec is None or rec.followup_queued or rec.status == "interrupted":
            return
        calls = rec.reply.calls
        if not calls or any(c.status == "pending" for c in calls):
            return
        if all(c.status == "cancelled" for c in calls):
            return
        rec.followup_queued = True
        self.tool_rounds += 1
        self.enqueue(ReplyPlan("tool_result", self._clock.now(), carrying_reply_id=reply_id))

    # ------------------------------------------------------------------ running a reply
    async def _run(self, reply: Reply) -> None:
        try:
            await reply.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reply %s failed", reply.reply_id)
        if not reply.finished:
            self._completed(reply)

    def started(self, reply: Reply) -> None:
        """First output of a reply is ready: allocate its ids and announce it (§12.1)."""
        reply.reply_id = ids.reply_id()
        reply.item_id = ids.item_id()
        self._records[reply.reply_id] = ReplyRecord(reply, self._clock.wall())
        self._host.reply_audible(reply)
        self._host.emit(ev.reply_started(reply.reply_id, reply.item_id))

    def _completed(self, reply: Reply) -> None:
        assert reply.reply_id is not None and reply.item_id is not None
        reply.finished = True
        text = reply.final_text()
        self._host.emit(ev.agent_transcript(reply.reply_id, reply.item_id, text, False))
        self._host.emit(ev.reply_done(reply.reply_id, "completed"))
        self._close(reply, text, "completed")
        self.followup_if_settled(reply.reply_id)
        self.start_next()

    def interrupt(self, reply: Reply, *, notify: bool) -> None:
        """End a started reply as interrupted: only its played words enter the history."""
        assert reply.reply_id is not None and reply.item_id is not None
        text = reply.played_text()
        reply.finished = True
        if self._task is not None:
            self._task.cancel()
        if notify:
            self._host.emit(ev.agent_transcript(reply.reply_id, reply.item_id, text, True))
            self._host.emit(ev.reply_done(reply.reply_id, "interrupted"))
        self._records[reply.reply_id].interrupted_at = self._clock.wall()
        reply_id = reply.reply_id
        self._queue = deque(p for p in self._queue if not p.follows(reply_id))
        self._close(reply, text, "interrupted")
        self._host.calls_cancelled(reply)

    def _close(self, reply: Reply, text: str, status: Literal["completed", "interrupted"]) -> None:
        assert reply.reply_id is not None and reply.item_id is not None
        self._history.add_assistant(text, reply.item_id, reply.calls)
        record = self._records[reply.reply_id]
        record.status = status
        record.ended_at = self._clock.wall()
        record.text = text
        self.closed_records.append(record)
        if self.current is reply:
            self.current = None
            self._task = None
        self._host.reply_closed(reply)

    # ------------------------------------------------------------------ preemption
    def preempt(self, cause: Preemption) -> None:
        """Take an unheard current reply off the floor; queued plans follow the same rule."""
        reply = self.current
        if reply is not None and not reply.started:
            reply.finished = True
            if self._task is not None:
                self._task.cancel()
            self.current = None
            self._task = None
            if reply.plan.survives(cause):
                self._queue.appendleft(reply.plan)
        if cause is Preemption.NEW_USER_TURN:
            self._queue = deque(p for p in self._queue if p.survives(cause))

    def cancel(self, reply: Reply) -> None:
        """``reply.cancel`` of the current reply (§7.6)."""
        if reply.started:
            self.interrupt(reply, notify=True)
        else:
            self.preempt(Preemption.CLIENT_CANCEL)
        self.start_next()

    def detach(self) -> None:
        """The connection dropped: nothing more is said until a resume (§14.1)."""
        self.drop_speculation()
        reply = self.current
        if reply is not None:
            if reply.started:
                self.interrupt(reply, notify=False)
            else:
                self.preempt(Preemption.DISCONNECT)

    def end(self) -> None:
        self.drop_speculation()
        reply = self.current
        if reply is not None and reply.started and not reply.finished:
            self.interrupt(reply, notify=False)

    # ------------------------------------------------------------------ preemptive replies
    def speculate(self, text: str, commit_in: float) -> None:
        """Start the reply to a turn that looks complete while the silence timer still runs.

        It is generated and synthesised behind a gate; the turn's commit opens the gate if the
        final text is the same (:meth:`adopt`), so the reply is ready when the turn ends.
        ``commit_in``: seconds until the turn is expected to end (see ``Reply.commit_due``).
        """
        self.drop_speculation()
        host = self._host
        if self.current is not None or self._queue or host.hold_active or not host.running:
            return
        plan = ReplyPlan("user_speech", self._clock.now(), user_text=text)
        reply = host.build_reply(plan, tools=self.tools_allowed, pending_user_text=text)
        reply.gate = asyncio.Event()
        reply.commit_due = self._clock.now() + commit_in
        self._spec = Speculation(text, reply, host.spawn(self._run(reply)))

    def adopt(self, text: str, plan: ReplyPlan) -> bool:
        """The turn committed with ``text``: the prepared reply becomes the current one if it
        answers exactly that and nothing else is waiting."""
        spec, self._spec = self._spec, None
        if spec is None:
            return False
        if spec.text == text and self.current is None and not self._queue:
            spec.reply.plan = plan
            self.current, self._task = spec.reply, spec.task
            spec.reply.open_gate()
            return True
        spec.task.cancel()
        return False

    def drop_speculation(self) -> None:
        spec, self._spec = self._spec, None
        if spec is not None:
            spec.reply.finished = True
            spec.task.cancel()

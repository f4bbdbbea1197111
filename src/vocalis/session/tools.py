"""Tool calls (§13) as a part of the session: dispatch, results, timeouts, follow-ups, hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vocalis import ids, metrics
from vocalis.protocol import client_events as ce
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.providers.base import ToolCallRequest
from vocalis.session.history import ToolCallRecord, encode_result
from vocalis.session.lifecycle import State
from vocalis.session.reply import Reply, ReplyPlan
from vocalis.session.tool_args import check_arguments

if TYPE_CHECKING:
    from vocalis.protocol.config import SessionConfig
    from vocalis.protocol.errors import ProtocolError
    from vocalis.session.clock import Clock
    from vocalis.session.hooks import HttpToolRunner
    from vocalis.session.timeline import ReplyRecord
    from vocalis.settings import Settings

MAX_TOOL_ROUNDS = 8  # consecutive follow-ups with tools before one without (§13.2)


@dataclass
class HeldTurn:
    """A user turn closed during a ``hold`` tool call: its transcript waits (§13.5)."""

    item_id: str
    text: str
    plan: ReplyPlan


class ToolCalls:
    """The session's tool desk. Mixed into :class:`~vocalis.session.engine.Session`."""

    if TYPE_CHECKING:
        config: SessionConfig
        settings: Settings
        clock: Clock
        state: State
        http_runner: HttpToolRunner | None
        _replies: dict[str, ReplyRecord]
        _calls: dict[str, ToolCallRecord]
        _held: list[HeldTurn]
        _tool_rounds: int

        def emit(self, event: ev.ServerEvent) -> None: ...
        def error(self, err: ProtocolError) -> None: ...
        def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...
        def reply_started(self, reply: Reply) -> None: ...
        def _queue_plan(self, plan: ReplyPlan) -> None: ...
        def _maybe_start_reply(self) -> None: ...
        def _accept_user_text(self, item_id: str, text: str, plan: ReplyPlan | None) -> None: ...

    def _hold_active(self) -> bool:
        return any(
            c.status == "pending" and c.execution_mode == "hold" for c in self._calls.values()
        )

    # ================================================================== tools
    def dispatch_tool_call(self, reply: Reply, call: ToolCallRequest) -> list[str]:
        tool = self.config.tool(call.name)
        if tool is None:
            return [f"there is no tool named '{call.name}'"]
        problems = check_arguments(call.arguments, tool.parameters)
        if problems:
            return problems
        if not reply.started:
            self.reply_started(reply)
        assert reply.reply_id is not None and reply.item_id is not None
        record = ToolCallRecord(
            call_id=ids.call_id(),
            name=call.name,
            arguments=call.arguments,
            reply_id=reply.reply_id,
            item_id=reply.item_id,
            dispatched_at=self.clock.wall(),
            execution_mode=tool.execution_mode,
            server_executed=tool.http is not None,
            response_instructions=tool.response_instructions,
        )
        reply.calls.append(record)
        self._calls[record.call_id] = record
        self.emit(ev.tool_call(record.call_id, call.name, call.arguments, reply.reply_id))
        timers = self._replies[reply.reply_id].call_timers
        timers[record.call_id] = self._spawn(self._call_timeout(record, tool.timeout_seconds))
        if tool.http is not None:
            self._spawn(self._run_http_tool(record, tool.http, tool.timeout_seconds))
        return []

    def transition_phrase(self, tool_name: str) -> str | None:
        """What an ``interactive`` call may have the agent say when it said nothing yet (§13.5)."""
        tool = self.config.tool(tool_name)
        if tool is None or tool.execution_mode != "interactive":
            return None
        return self.settings.tool_transition_phrase or None

    async def _call_timeout(self, record: ToolCallRecord, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self._resolve_call(record, None, True, timed_out=True)

    async def _run_http_tool(self, record: ToolCallRecord, http: Any, timeout: float) -> None:
        if self.http_runner is None:
            result, is_error = "HTTP tools are not available on this server", True
        else:
            result, is_error = await self.http_runner(
                http.url, http.http_method, http.headers, record.arguments, timeout
            )
        self._resolve_call(record, result, is_error)

    def _stop_call_timer(self, record: ToolCallRecord) -> None:
        rec = self._replies.get(record.reply_id)
        task = rec.call_timers.pop(record.call_id, None) if rec else None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _on_tool_result(self, event: ce.ToolResult) -> None:
        record = self._calls.get(event.call_id)
        if record is None:
            self.error(errors.unknown_call_id(event.call_id))
            return
        if record.status != "pending" or record.server_executed:
            return  # cancelled, timed out, answered or server-executed: ignored (§7.4)
        self._resolve_call(record, encode_result(event.result), bool(event.is_error))

    def _resolve_call(
        self, record: ToolCallRecord, result: str | None, is_error: bool, *, timed_out: bool = False
    ) -> None:
        if record.status != "pending" or self.state is State.ENDED:
            return
        record.status = "timed_out" if timed_out else "resolved"
        metrics.tool_call(
            "timed_out"
            if timed_out
            else "http"
            if record.server_executed
            else "error"
            if is_error
            else "result"
        )
        record.result = result
        record.is_error = is_error
        record.resolved_at = self.clock.wall()
        self._stop_call_timer(record)
        self._maybe_followup(record.reply_id)
        self._release_hold_if_done()
        self._maybe_start_reply()

    def _maybe_followup(self, reply_id: str) -> None:
        """Queue exactly one follow-up once every call of a completed reply is resolved."""
        rec = self._replies.get(reply_id)
        if rec is None or rec.followup_queued or rec.status == "interrupted":
            return
        calls = rec.reply.calls
        if not calls or any(c.status == "pending" for c in calls):
            return
        if all(c.status == "cancelled" for c in calls):
            return
        rec.followup_queued = True
        self._tool_rounds += 1
        self._queue_plan(ReplyPlan("tool_result", self.clock.now(), carrying_reply_id=reply_id))

    def _release_hold_if_done(self) -> None:
        if not self._held or self._hold_active():
            return
        held, self._held = self._held, []
        for turn in held:
            self.emit(ev.user_transcript(turn.item_id, turn.text))
            self._accept_user_text(turn.item_id, turn.text, None)

"""The tool desk (§13): dispatch, results, timeouts, HTTP tools and the ``hold`` mode.

It owns every tool call of the session and the user turns held back while a ``hold`` call is
pending. It never starts replies: whatever settles calls (a result, a timeout, an HTTP tool, an
interruption) reports a :class:`Settlement`, and the session decides what happens next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vocalis import ids, metrics
from vocalis.protocol import client_events as ce
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.providers.base import ToolCallRequest
from vocalis.session.history import ToolCallRecord, encode_result
from vocalis.session.tool_args import check_arguments

if TYPE_CHECKING:
    from vocalis.protocol.config import SessionConfig, ToolConfig
    from vocalis.protocol.errors import ProtocolError
    from vocalis.session.clock import Clock
    from vocalis.session.hooks import HttpToolRunner
    from vocalis.session.reply import Reply, ReplyPlan

MAX_TOOL_ROUNDS = 8  # consecutive follow-ups with tools before one without (§13.2)


@dataclass
class HeldTurn:
    """A user turn closed during a ``hold`` tool call: its transcript waits (§13.5)."""

    item_id: str
    text: str
    plan: ReplyPlan


@dataclass
class Settlement:
    """What changed when calls settled: the reply whose calls may all be resolved now, and the
    user turns a finished ``hold`` released."""

    reply_id: str | None = None
    released: list[HeldTurn] = field(default_factory=list)


class ToolDesk:
    def __init__(
        self,
        config: Callable[[], SessionConfig],
        clock: Clock,
        emit: Callable[[ev.ServerEvent], None],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        settled: Callable[[Settlement], None],
        http_runner: HttpToolRunner | None,
        transition_phrase: str,
    ) -> None:
        self._config = config
        self._clock = clock
        self._emit = emit
        self._spawn = spawn
        self._settled = settled
        self._http_runner = http_runner
        self._transition_phrase = transition_phrase
        self._calls: dict[str, ToolCallRecord] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._held: list[HeldTurn] = []
        self._closed = False

    @property
    def hold_active(self) -> bool:
        return any(
            c.status == "pending" and c.execution_mode == "hold" for c in self._calls.values()
        )

    def close(self) -> None:
        """The session ended: nothing settles any more."""
        self._closed = True

    # ------------------------------------------------------------------ dispatch
    def check(self, call: ToolCallRequest) -> list[str]:
        """Problems with a call the model asked for (§13.1); empty when it may be dispatched."""
        tool = self._config().tool(call.name)
        if tool is None:
            return [f"there is no tool named '{call.name}'"]
        return check_arguments(call.arguments, tool.parameters)

    def dispatch(self, reply: Reply, call: ToolCallRequest) -> None:
        """Send a checked call of a started reply to the client (or run its HTTP tool)."""
        tool = self._config().tool(call.name)
        assert tool is not None and reply.reply_id is not None and reply.item_id is not None
        record = ToolCallRecord(
            call_id=ids.call_id(),
            name=call.name,
            arguments=call.arguments,
            reply_id=reply.reply_id,
            item_id=reply.item_id,
            dispatched_at=self._clock.wall(),
            execution_mode=tool.execution_mode,
            server_executed=tool.http is not None,
            response_instructions=tool.response_instructions,
        )
        reply.calls.append(record)
        self._calls[record.call_id] = record
        self._emit(ev.tool_call(record.call_id, call.name, call.arguments, reply.reply_id))
        self._timers[record.call_id] = self._spawn(self._timeout(record, tool.timeout_seconds))
        if tool.http is not None:
            self._spawn(self._run_http_tool(record, tool))

    def adopt(self, record: ToolCallRecord) -> None:
        """A pending call restored from another node's checkpoint: its timeout keeps running
        from the original dispatch (§13.6), and an HTTP tool is run again here, because the
        node that ran it is gone (at-least-once, like any retried HTTP request)."""
        self._calls[record.call_id] = record
        tool = self._config().tool(record.name)
        timeout = tool.timeout_seconds if tool is not None else 0.0
        remaining = max(0.0, record.dispatched_at + timeout - self._clock.wall())
        self._timers[record.call_id] = self._spawn(self._timeout(record, remaining))
        if tool is not None and tool.http is not None:
            self._spawn(self._run_http_tool(record, tool))

    def transition_phrase(self, tool_name: str) -> str | None:
        """What an ``interactive`` call may have the agent say when it said nothing yet (§13.5)."""
        tool = self._config().tool(tool_name)
        if tool is None or tool.execution_mode != "interactive":
            return None
        return self._transition_phrase or None

    # ------------------------------------------------------------------ results
    def result(self, event: ce.ToolResult) -> Settlement | ProtocolError | None:
        """A client's ``tool.result`` (§7.4)."""
        record = self._calls.get(event.call_id)
        if record is None:
            return errors.unknown_call_id(event.call_id)
        if record.status != "pending" or record.server_executed:
            return None  # cancelled, timed out, answered or server-executed: ignored (§7.4)
        return self._resolve(record, encode_result(event.result), bool(event.is_error))

    async def _timeout(self, record: ToolCallRecord, seconds: float) -> None:
        await self._clock.sleep(seconds)
        settlement = self._resolve(record, None, True, timed_out=True)
        if settlement is not None:
            self._settled(settlement)

    async def _run_http_tool(self, record: ToolCallRecord, tool: ToolConfig) -> None:
        http = tool.http
        assert http is not None
        if self._http_runner is None:
            result, is_error = "HTTP tools are not available on this server", True
        else:
            result, is_error = await self._http_runner(
                http.url, http.http_method, http.headers, record.arguments, tool.timeout_seconds
            )
        settlement = self._resolve(record, result, is_error)
        if settlement is not None:
            self._settled(settlement)

    def _resolve(
        self, record: ToolCallRecord, result: str | None, is_error: bool, *, timed_out: bool = False
    ) -> Settlement | None:
        if record.status != "pending" or self._closed:
            return None
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
        record.resolved_at = self._clock.wall()
        self._stop_timer(record)
        return Settlement(record.reply_id, self._release_if_done())

    # ------------------------------------------------------------------ interruption and hold
    def cancel_calls(self, reply: Reply) -> Settlement:
        """An interrupted reply's pending calls are cancelled (§11.5)."""
        for call in reply.calls:
            if call.status == "pending":
                call.status = "cancelled"
                metrics.tool_call("cancelled")
                self._stop_timer(call)
        return Settlement(None, self._release_if_done())

    def hold(self, turn: HeldTurn) -> None:
        self._held.append(turn)

    def _release_if_done(self) -> list[HeldTurn]:
        if not self._held or self.hold_active:
            return []
        held, self._held = self._held, []
        return held

    def _stop_timer(self, record: ToolCallRecord) -> None:
        task = self._timers.pop(record.call_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def pending_calls(self) -> list[ToolCallRecord]:
        return [c for c in self._calls.values() if c.status == "pending"]

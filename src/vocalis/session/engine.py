"""The session engine: one voice conversation, independent of any socket.

Events in (:meth:`Session.handle` with parsed client events, :meth:`attach`/:meth:`detach` for the
connection), server events out (through the attached :class:`Transport`), time from an injected
:class:`Clock`. Everything a session starts runs in its own task group, so ending it (client
``session.end``, cap, idle, grace expiry, shutdown) cancels all of its work at once.

The session is split by concern: this module has the lifecycle, client events and replies;
:mod:`~vocalis.session.listening` turn-taking and barge-in; :mod:`~vocalis.session.tools` tool
calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from vocalis import ids, metrics
from vocalis.protocol import client_events as ce
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.protocol.config import (
    CustomLLM,
    SessionConfig,
    SessionIn,
    ValidationContext,
    parse_session,
    validate_update,
)
from vocalis.protocol.errors import ProtocolError
from vocalis.providers.base import (
    LLM,
    Audio,
    ChatMessage,
    LLMRequest,
    ProviderSet,
    ToolSpec,
)
from vocalis.session.agents import stored_agent_config
from vocalis.session.clock import Clock
from vocalis.session.history import History, ToolCallRecord
from vocalis.session.hooks import AgentLookup, HttpToolRunner, SessionRecord, SessionRecorder
from vocalis.session.input import InputStage
from vocalis.session.lifecycle import State, Transport
from vocalis.session.listening import BargeCandidate, Listening, Speculation, UserTurn
from vocalis.session.recording import StereoRecording
from vocalis.session.reply import Reply, ReplyPlan
from vocalis.session.timeline import ReplyRecord, build_timeline
from vocalis.session.tools import MAX_TOOL_ROUNDS, HeldTurn, ToolCalls
from vocalis.settings import Settings

log = logging.getLogger(__name__)

MAX_QUEUED_CREATES = 8


class Session(Listening, ToolCalls):
    """One conversation. Create through :class:`~vocalis.session.manager.SessionManager`."""

    def __init__(
        self,
        *,
        config: SessionConfig,
        providers: ProviderSet,
        settings: Settings,
        clock: Clock,
        cap_seconds: float,
        resume_token: str,
        llm: LLM | None = None,
        recorder: SessionRecorder | None = None,
        http_runner: HttpToolRunner | None = None,
        agent_lookup: AgentLookup | None = None,
        llm_factory: Callable[[CustomLLM], LLM] | None = None,
        legacy: bool = False,
    ) -> None:
        self.config = config
        self.id = config.id
        self.providers = providers
        self.settings = settings
        self.clock = clock
        self.resume_token = resume_token
        self.legacy_pending_first_update = legacy
        self.recorder = recorder
        self.http_runner = http_runner
        self.agent_lookup = agent_lookup
        self.llm_factory = llm_factory
        self._llm = llm or providers.llm
        self.created_mono = clock.now()
        self.created_wall = clock.wall()
        self.cap_seconds = cap_seconds
        self.expires_at = int(self.created_wall + cap_seconds)
        self.state = State.ACTIVE
        self.close_reason: str | None = None
        self.ended_wall: float | None = None

        self._transport: Transport | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._running = asyncio.Event()
        self._stop = asyncio.Event()
        self._ending = False
        self._grace_task: asyncio.Task[None] | None = None
        self._frame_lock = asyncio.Lock()

        self.history = History()
        self._input = InputStage(
            config.input_format.encoding,
            clock,
            settings.input_audio_max_ahead_ms,
            providers.vad.frame_samples,
        )
        self._vad = providers.vad.open_stream()
        self._run_start: int | None = None
        self._gap = 0
        self._last_speech_end = 0
        self._last_speech_wall = 0.0
        self._agent_speech_from = 0
        self._turn: UserTurn | None = None
        self._candidate: BargeCandidate | None = None
        self._partial_cost = 0.0  # seconds one partial decode takes (moving average)
        self._spec: Speculation | None = None
        self._last_rate_error = -1e9

        self._queue: deque[ReplyPlan] = deque()
        self._current: Reply | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._replies: dict[str, ReplyRecord] = {}
        self._calls: dict[str, ToolCallRecord] = {}
        self._held: list[HeldTurn] = []
        self._tool_rounds = 0
        self._last_activity = clock.now()

        self._timeline_turns: list[ReplyRecord] = []
        self._config_changes: list[dict[str, Any]] = []
        self._recording = StereoRecording() if settings.recording else None
        self.on_end: Callable[[Session], None] | None = None

    # ================================================================== lifecycle
    @property
    def attached(self) -> bool:
        return self._transport is not None

    async def run(self) -> None:
        """Run until the session ends; every task of the session lives in this group."""

        class _Over(Exception):
            pass

        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._cap_timer())
                tg.create_task(self._stall_watchdog())
                if self.settings.idle_timeout_seconds > 0:
                    tg.create_task(self._idle_timer())
                self._running.set()
                await self._stop.wait()
                raise _Over
        except* _Over:
            pass
        except* Exception:
            log.exception("session %s failed", self.id)
            self.end("error", close_code=errors.CLOSE_INTERNAL, error=errors.internal_error())
        finally:
            self._tg = None

    async def started(self) -> None:
        await self._running.wait()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._tg is not None, "session is not running"
        return self._tg.create_task(coro)

    def attach(self, transport: Transport, *, resumed: bool, send_updated: bool = True) -> None:
        """Attach a connection and greet it with ``session.ready`` (§4.2, §14.2)."""
        if self._grace_task is not None:
            self._grace_task.cancel()
            self._grace_task = None
        self._transport = transport
        self.state = State.ACTIVE
        self._input.restart_clock()
        if send_updated and not resumed:
            self.emit(ev.session_updated(self.config.echo()))
        self.emit(ev.session_ready(self.id, self.config.echo(), self.expires_at, self.resume_token))
        if not resumed:
            self._prefill()
        if not resumed and self.config.greeting:
            self._queue_plan(ReplyPlan("greeting", self.clock.now()))
        self._record_changed()
        self._maybe_start_reply()

    def is_attached_to(self, transport: Transport) -> bool:
        return self._transport is transport

    def take_over(self) -> None:
        """A resume on another connection takes this session: the old socket gets 1001 only."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close(errors.CLOSE_GOING_AWAY)

    def detach(self) -> None:
        """Unclean disconnect (§14.1): keep the session for the grace window."""
        if self.state is State.ENDED or self._transport is None:
            return
        self._transport = None
        if self.settings.resume_grace_seconds <= 0:
            self.end("disconnected")
            return
        self.state = State.DETACHED
        self._drop_candidate()
        self._cancel_speculation()
        reply = self._current
        if reply is not None:
            if reply.started:
                self._interrupt(reply, notify=False)
            else:
                self._discard_unstarted(reply, requeue=True)
        if self._turn is not None:
            self._spawn(self._close_turn_silently(self._turn))
            self._turn = None
        self._grace_task = self._spawn(self._grace_timer())
        self._record_changed()

    def end(
        self,
        reason: str,
        *,
        close_code: int = errors.CLOSE_NORMAL,
        error: ProtocolError | None = None,
    ) -> None:
        """End the session now: stop all work, tell an attached client, close (§15)."""
        if self.state is State.ENDED:
            return
        self._cancel_speculation()
        reply = self._current
        if reply is not None and reply.started and not reply.finished:
            self._interrupt(reply, notify=False)
        self.state = State.ENDED
        self.close_reason = reason
        self.ended_wall = self.clock.wall()
        transport = self._transport
        if transport is not None:
            if error is not None:
                metrics.session_error(error.code)
                self.emit(ev.session_error(error, self.id))
            audio = self._input.accepted_seconds
            self.emit(ev.session_ended(self.ended_wall - self.created_wall, audio or None, reason))
        self._ending = True
        self._transport = None
        if transport is not None:
            transport.close(close_code)
        self._stop.set()
        if self.on_end is not None:
            self.on_end(self)

    # ================================================================== output
    def emit(self, event: ev.ServerEvent) -> None:
        if self._ending or self._transport is None:
            return
        event["timestamp"] = self.clock.wall()
        self._transport.send(event)

    def error(self, err: ProtocolError) -> None:
        if self._transport is not None:
            metrics.session_error(err.code)
        self.emit(ev.session_error(err, self.id))

    def agent_audio_sent(self, reply: Reply, samples: Audio, start_ms: float) -> None:
        """Hook for every agent chunk sent: metrics, and the recording at its playout time."""
        metrics.output_audio(len(samples) / reply.output_rate)
        first = reply.timings.first_audio_sent
        if start_ms == 0 and first is not None:
            metrics.reply_first_audio(max(0.0, first - reply.plan.queued_at))
        if self._recording is not None and reply.output.t_first is not None:
            at = reply.output.t_first + start_ms / 1000 - self.created_mono
            self._recording.add_agent(at, samples, reply.output_rate)

    @property
    def output_volume(self) -> float:
        return self.config.volume if self.config.volume is not None else 100.0

    # ================================================================== client events
    async def handle(self, event: ce.ClientEvent) -> None:
        """Process one client event of an attached session (strict arrival order)."""
        if self.state is State.ENDED:
            return
        if not isinstance(event, ce.InputAudio):
            self._last_activity = self.clock.now()
        match event:
            case ce.InputAudio():
                await self._on_audio(event.audio)
            case ce.SessionUpdate():
                await self._on_update(event)
            case ce.ToolResult():
                self._on_tool_result(event)
            case ce.ReplyCreate():
                self._on_reply_create(event)
            case ce.ConversationMessage():
                self._on_message(event)
            case ce.ReplyCancel():
                self._on_reply_cancel(event)
            case ce.SessionEnd():
                self.end("client_end")
            case ce.SessionResume():
                self.error(errors.resume_not_first())

    async def _on_update(self, event: ce.SessionUpdate) -> None:
        try:
            update = parse_session(event.session)
        except ValueError:
            self.error(errors.invalid_fields("session.update"))
            return
        ctx = ValidationContext(tuple(self.settings.voice_ids()))
        first = self.legacy_pending_first_update
        try:
            if first and update.agent_id is not None:
                new = await self._legacy_agent_config(update, ctx)
            else:
                new = validate_update(update, self.config, ctx, first=first)
        except ProtocolError as err:
            # after the legacy fallback even first-update errors keep the session (App. A)
            self.error(ProtocolError(err.code, err.message, param=err.param))
            return
        self.legacy_pending_first_update = False
        greeting_added = first and new.greeting and not self.config.greeting
        self._apply_config(new, event.session or {})
        self.emit(ev.session_updated(self.config.echo()))
        if greeting_added and not self._replies and self._current is None:
            self._queue_plan(ReplyPlan("greeting", self.clock.now()))
            self._maybe_start_reply()

    async def _legacy_agent_config(
        self, update: SessionIn, ctx: ValidationContext
    ) -> SessionConfig:
        """App. A: ``agent_id`` in the first update after the fallback replaces the config."""
        if update.other_fields_set():
            raise errors.agent_id_exclusive()
        assert update.agent_id is not None
        base = SessionConfig(
            id=self.id,
            default_system_prompt=self.settings.default_system_prompt,
            default_voice=self.settings.default_voice,
        )
        config = await stored_agent_config(update.agent_id, base, self.agent_lookup, ctx)
        if config.llm and self.llm_factory is not None:
            self._llm = self.llm_factory(config.llm[0])
        return config

    def _apply_config(self, new: SessionConfig, raw: dict[str, Any]) -> None:
        if new.input_format != self.config.input_format:
            self._input.set_encoding(new.input_format.encoding)
        prompt_changed = (new.effective_system_prompt, new.all_tools) != (
            self.config.effective_system_prompt,
            self.config.all_tools,
        )
        self.config = new
        self._config_changes.append(
            {
                "received_at_ms": int(self.clock.wall() * 1000),
                "during_turn_id": self._current.reply_id if self._current else None,
                "update": _redact(raw),
            }
        )
        self._record_changed()
        if prompt_changed:
            self._prefill()

    def _on_message(self, event: ce.ConversationMessage) -> None:
        if len(event.content) > 32_768:
            self.error(errors.invalid_value("content", "at most 32768 characters"))
            return
        self._cancel_speculation()  # the model must see this message
        if event.role == "user":
            self.history.add_user(event.content, ids.item_id())
        else:
            self.history.add_system(event.content)

    def _on_reply_create(self, event: ce.ReplyCreate) -> None:
        if event.instructions is not None and len(event.instructions) > 4_096:
            self.error(errors.invalid_value("instructions", "at most 4096 characters"))
            return
        queued = sum(1 for p in self._queue if p.trigger == "reply_create")
        if queued >= MAX_QUEUED_CREATES:
            self.error(errors.too_many_queued())
            return
        self._queue_plan(ReplyPlan("reply_create", self.clock.now(), event.instructions))
        self._maybe_start_reply()

    def _on_reply_cancel(self, event: ce.ReplyCancel) -> None:
        reply = self._current
        if event.reply_id is None:
            if reply is not None:
                self._cancel_reply(reply)
            return
        if event.reply_id not in self._replies:
            self.error(errors.unknown_reply_id(event.reply_id))
            return
        if reply is not None and reply.reply_id == event.reply_id:
            self._cancel_reply(reply)

    def _cancel_reply(self, reply: Reply) -> None:
        if reply.started:
            self._drop_candidate()
            self._interrupt(reply, notify=True)
        else:
            self._discard_unstarted(reply, requeue=False)
        self._maybe_start_reply()

    # ================================================================== replies
    def _queue_plan(self, plan: ReplyPlan) -> None:
        self._queue.append(plan)

    def _next_plan(self) -> ReplyPlan | None:
        if not self._queue:
            return None
        if self._hold_active():
            for plan in self._queue:
                if plan.trigger == "reply_create":
                    self._queue.remove(plan)
                    return plan
            return None
        return self._queue.popleft()

    def _maybe_start_reply(self) -> None:
        if (
            self.state is not State.ACTIVE
            or self._tg is None
            or self._current is not None
            or self._turn is not None
        ):
            return
        plan = self._next_plan()
        if plan is None:
            return
        reply = self._make_reply(plan)
        self._current = reply
        self._reply_task = self._spawn(self._run_reply(reply))

    def _make_reply(self, plan: ReplyPlan, pending_user_text: str | None = None) -> Reply:
        cfg = self.config
        common: dict[str, Any] = {
            "plan": plan,
            "host": self,
            "clock": self.clock,
            "tts": self.providers.tts,
            "voice": cfg.effective_voice,
            "output_encoding": cfg.output_format.encoding,
            "output_rate": cfg.output_format.sample_rate,
            "chunk_ms": self.settings.output_chunk_ms,
            "lead_ms": self.settings.output_lead_ms,
        }
        if plan.trigger == "greeting":
            protected = "greeting" in cfg.uninterruptible_turns
            return Reply(text=cfg.greeting or "", protected=protected, **common)
        tools_on = self._tool_rounds < MAX_TOOL_ROUNDS
        tools = (
            tuple(ToolSpec(t.name, t.description, t.parameters) for t in cfg.all_tools)
            if tools_on
            else ()
        )
        messages = self.history.messages(cfg.effective_system_prompt, plan.instructions)
        if pending_user_text is not None:
            messages.append(ChatMessage("user", pending_user_text))
        request = LLMRequest(tuple(messages), tools, max_tokens=self.settings.reply_max_tokens)
        return Reply(llm=self._llm, request=request, **common)

    async def _run_reply(self, reply: Reply) -> None:
        try:
            await reply.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reply %s failed", reply.reply_id)
        if not reply.finished:
            self._finish_completed(reply)

    def _prefill(self) -> None:
        """Let a model that can (the embedded one) cache the system prompt and tools now, so the
        first turn does not pay for them."""
        prefill = getattr(self._llm, "prefill", None)
        if prefill is None or self._tg is None:
            return
        request = self._make_reply(ReplyPlan("reply_create", self.clock.now())).request
        assert request is not None
        system_only = replace(request, messages=request.messages[:1])

        async def run() -> None:
            try:
                await prefill(system_only)
            except Exception:
                log.debug("prefill failed", exc_info=True)

        self._spawn(run())

    def reply_started(self, reply: Reply) -> None:
        """First output of a reply is ready: allocate its ids and announce it (§12.1)."""
        reply.reply_id = ids.reply_id()
        reply.item_id = ids.item_id()
        self._replies[reply.reply_id] = ReplyRecord(reply, self.clock.wall())
        self._agent_speech_from = self._input.ring.end
        self.emit(ev.reply_started(reply.reply_id, reply.item_id))

    def _finish_completed(self, reply: Reply) -> None:
        assert reply.reply_id is not None and reply.item_id is not None
        reply.finished = True
        text = reply.final_text()
        self.emit(ev.agent_transcript(reply.reply_id, reply.item_id, text, False))
        self.emit(ev.reply_done(reply.reply_id, "completed"))
        self._close_reply(reply, text, "completed")
        self._maybe_followup(reply.reply_id)
        self._maybe_start_reply()

    def _interrupt(self, reply: Reply, *, notify: bool) -> None:
        """End a started reply as interrupted: only its played words enter the history."""
        assert reply.reply_id is not None and reply.item_id is not None
        text = reply.played_text()
        reply.finished = True
        if self._reply_task is not None:
            self._reply_task.cancel()
        if notify:
            self.emit(ev.agent_transcript(reply.reply_id, reply.item_id, text, True))
            self.emit(ev.reply_done(reply.reply_id, "interrupted"))
        record = self._replies[reply.reply_id]
        record.interrupted_at = self.clock.wall()
        for call in reply.calls:
            if call.status == "pending":
                call.status = "cancelled"
                metrics.tool_call("cancelled")
                self._stop_call_timer(call)
        self._queue = deque(p for p in self._queue if p.carrying_reply_id != reply.reply_id)
        self._close_reply(reply, text, "interrupted")
        self._release_hold_if_done()

    def _discard_unstarted(self, reply: Reply, *, requeue: bool) -> None:
        reply.finished = True
        if self._reply_task is not None:
            self._reply_task.cancel()
        self._current = None
        self._reply_task = None
        if requeue:
            self._queue.appendleft(reply.plan)

    def _close_reply(
        self, reply: Reply, text: str, status: Literal["completed", "interrupted"]
    ) -> None:
        assert reply.reply_id is not None and reply.item_id is not None
        self.history.add_assistant(text, reply.item_id, reply.calls)
        record = self._replies[reply.reply_id]
        record.status = status
        record.ended_at = self.clock.wall()
        record.text = text
        self._timeline_turns.append(record)
        if self._current is reply:
            self._current = None
            self._reply_task = None
        cand, self._candidate = self._candidate, None
        if cand is not None and cand.partial_task is not None:
            cand.partial_task.cancel()
        if self._run_start is not None:
            # speech over the agent's last words starts a new segment now (§11.4)
            self._run_start = self._input.ring.end

    # ================================================================== timers
    async def _cap_timer(self) -> None:
        await self.clock.sleep(self.created_mono + self.cap_seconds - self.clock.now())
        self.end("max_duration")

    async def _grace_timer(self) -> None:
        await self.clock.sleep(self.settings.resume_grace_seconds)
        self.end("disconnected")

    async def _idle_timer(self) -> None:
        limit = self.settings.idle_timeout_seconds
        while True:
            if self._current is not None or self._queue or self._turn or self._candidate:
                self._last_activity = self.clock.now()
            remaining = self._last_activity + limit - self.clock.now()
            if remaining <= 0:
                self.end("idle_timeout")
                return
            await self.clock.sleep(min(remaining, 1.0))

    # ================================================================== records
    def record(self) -> SessionRecord:
        status: Literal["active", "disconnected", "ended"] = (
            "ended"
            if self.state is State.ENDED
            else "disconnected"
            if self.state is State.DETACHED
            else "active"
        )
        return SessionRecord(
            session_id=self.id,
            agent_id=self.config.agent_id,
            status=status,
            created_at=self.created_wall,
            config=self.config.echo(),
            ended_at=self.ended_wall,
            public_close_reason=self.close_reason,
            timeline=self.timeline() if self.state is State.ENDED else None,
            recording=(
                self._recording.to_wav()
                if self._recording is not None and self.state is State.ENDED
                else None
            ),
        )

    def _record_changed(self) -> None:
        if self.recorder is not None and self._tg is not None:
            self._spawn(self.recorder.session_changed(self.record()))

    def timeline(self) -> dict[str, Any]:
        return build_timeline(self, self._timeline_turns, self._config_changes)


_SECRET_KEYS = {"api_key", "secret", "value"}


def _redact(obj: Any) -> Any:
    """A copy of a client ``session`` object without secrets (§6.7)."""
    if isinstance(obj, dict):
        return {k: ("[redacted]" if k in _SECRET_KEYS else _redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v) for v in obj]
    return obj

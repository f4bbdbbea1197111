"""The session engine: one voice conversation, independent of any socket.

Events in (:meth:`Session.handle` with parsed client events, :meth:`attach`/:meth:`detach` for the
connection), server events out (through the attached :class:`Transport`), time from an injected
:class:`Clock`. Everything a session starts runs in its own task group, so ending it (client
``session.end``, cap, idle, grace expiry, shutdown) cancels all of its work at once.

The session keeps the lifecycle and routes between its parts, each the single owner of its
state: the :class:`~vocalis.session.listening.Listener` (input audio, turn-taking, recognition),
the :class:`~vocalis.session.scheduler.ReplyScheduler` (queue, current and preemptive replies) and
the :class:`~vocalis.session.tools.ToolDesk` (tool calls and held turns). The flow of one audio
frame and one reply through them is drawn in ``docs/architecture.md``.

Why this file is longer than the others (~600 lines): it is the switchboard. Every client event
and every report of a part passes here, and the session implements each part's host interface
(``ListenerHost``, ``SchedulerHost``, ``ReplyHost``) with short routing methods; the decisions
themselves live in the parts. Keeping the routing in one place lets a reader follow any event end
to end without jumping between files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from vocalis import ids, metrics
from vocalis.protocol import client_events as ce
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.protocol.config import (
    SessionConfig,
)
from vocalis.protocol.errors import ProtocolError
from vocalis.providers.base import LLM, Audio, ToolCallRequest
from vocalis.session.history import History
from vocalis.session.hooks import SessionDeps, SessionRecord
from vocalis.session.lifecycle import State, Transport, move
from vocalis.session.listening import Listener
from vocalis.session.prompt_warming import PromptWarmer
from vocalis.session.recording import StereoRecording
from vocalis.session.reply import Preemption, Reply, ReplyPlan
from vocalis.session.reply_factory import ReplyFactory
from vocalis.session.scheduler import ReplyScheduler
from vocalis.session.timeline import SessionFacts, build_timeline
from vocalis.session.tools import HeldTurn, Settlement, ToolDesk
from vocalis.session.turn_actions import (
    Action,
    BargeIn,
    CommitTurn,
    DropCandidate,
    DropSpeculation,
    Floor,
    PauseReply,
    Speculate,
    TurnOpened,
    UserPartial,
)
from vocalis.session.updates import config_change, next_config

log = logging.getLogger(__name__)

MAX_QUEUED_CREATES = 8  # ``reply.create`` requests waiting at once (§7.5)
MAX_MESSAGE_CHARS = 32_768  # ``conversation.message`` content (§7.3)
MAX_INSTRUCTIONS_CHARS = 4_096  # ``reply.create`` instructions (§7.5)
IDLE_CHECK_SECONDS = 1.0


class Session:
    """One conversation. Create through :class:`~vocalis.session.manager.SessionManager`."""

    def __init__(
        self,
        *,
        config: SessionConfig,
        deps: SessionDeps,
        cap_seconds: float,
        resume_token: str,
        llm: LLM | None = None,
        legacy: bool = False,
    ) -> None:
        self.config = config
        self.id = config.id
        self.deps = deps
        self.settings = deps.settings
        self.clock = deps.clock
        self.resume_token = resume_token
        self.legacy_pending_first_update = legacy
        self.created_mono = self.clock.now()
        self.created_wall = self.clock.wall()
        self.cap_seconds = cap_seconds
        self.expires_at = int(self.created_wall + cap_seconds)
        self.state = State.ACTIVE
        self.close_reason: str | None = None
        self.ended_wall: float | None = None
        self.on_end: Callable[[Session], None] | None = None  # set by the manager

        self._transport: Transport | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._running = asyncio.Event()
        self._stop = asyncio.Event()
        self._grace_task: asyncio.Task[None] | None = None
        self._last_activity = self.clock.now()
        self._config_changes: list[dict[str, Any]] = []
        # Timeline turns and config changes from the nodes this session ran on before (§14 across
        # nodes, see checkpoint.py); empty for a session that never moved.
        self.prior_turns: list[dict[str, Any]] = []
        self.prior_config_changes: list[dict[str, Any]] = []

        self.history = History()
        self._recording = StereoRecording() if self.settings.recording else None
        self.listener = Listener(
            self, deps.providers, self.settings, self.clock, self.spawn, self._recording
        )
        self.replies = ReplyScheduler(self, self.clock, self.history)
        self._factory = ReplyFactory(
            self, deps, lambda: self.config, self.history, llm or deps.providers.llm
        )
        self._warmer = PromptWarmer()
        self.tools = ToolDesk(
            lambda: self.config,
            self.clock,
            self.emit,
            self.spawn,
            self._settled,
            deps.http_runner,
            self.settings.tool_transition_phrase,
        )

    # ================================================================== lifecycle
    @property
    def attached(self) -> bool:
        return self._transport is not None

    @property
    def running(self) -> bool:
        return self._tg is not None

    async def run(self) -> None:
        """Run until the session ends; every task of the session lives in this group."""

        class _Over(Exception):
            pass

        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._cap_timer())
                tg.create_task(self.listener.watch_stalls())
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

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._tg is not None, "session is not running"
        return self._tg.create_task(coro)

    def attach(self, transport: Transport, *, resumed: bool, send_updated: bool = True) -> None:
        """Attach a connection and greet it with ``session.ready`` (§4.2, §14.2)."""
        if self._grace_task is not None:
            self._grace_task.cancel()
            self._grace_task = None
        self._transport = transport
        self.state = move(self.state, State.ACTIVE)
        self.listener.input.restart_clock()
        if send_updated and not resumed:
            self.emit(ev.session_updated(self.config.echo()))
        self.emit(ev.session_ready(self.id, self.config.echo(), self.expires_at, self.resume_token))
        if not resumed:
            self._prefill()
        if not resumed and self.config.greeting:
            self.replies.enqueue(ReplyPlan("greeting", self.clock.now()))
        self._record_changed()
        self.replies.start_next()

    def is_attached_to(self, transport: Transport) -> bool:
        return self._transport is transport

    def take_over(self) -> None:
        """A resume on another connection takes this session: the old socket gets 1001 only."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close(errors.CLOSE_GOING_AWAY)

    def hand_off(self, close_code: int) -> None:
        """Another node is taking this session (a resume there, or this node draining): detach as
        after an unclean disconnect (§14.1), then close the socket with ``close_code`` and no
        further events, so the state to hand over is the one a resume would find."""
        transport = self._transport
        if transport is None:
            return
        self.detach()
        transport.close(close_code)

    def detach(self) -> None:
        """Unclean disconnect (§14.1): keep the session for the grace window."""
        if self.state is State.ENDED or self._transport is None:
            return
        self._transport = None
        if self.settings.resume_grace_seconds <= 0:
            self.end("disconnected")
            return
        self.state = move(self.state, State.DETACHED)
        self.listener.detach()
        self.replies.detach()
        self._grace_task = self.spawn(self._grace_timer())
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
        self.replies.end()
        self.state = move(self.state, State.ENDED)
        self.tools.close()
        self.close_reason = reason
        self.ended_wall = self.clock.wall()
        transport = self._transport
        if transport is not None:
            if error is not None:
                metrics.session_error(error.code)
                self.emit(ev.session_error(error, self.id))
            audio = self.listener.input.accepted_seconds
            self.emit(ev.session_ended(self.ended_wall - self.created_wall, audio or None, reason))
        self._transport = None
        if transport is not None:
            transport.close(close_code)
        self._stop.set()
        if self.on_end is not None:
            self.on_end(self)

    # ================================================================== output
    def emit(self, event: ev.ServerEvent) -> None:
        if self._transport is None:
            return
        event["timestamp"] = self.clock.wall()
        self._transport.send(event)

    def error(self, err: ProtocolError) -> None:
        if self._transport is not None:
            metrics.session_error(err.code)
        self.emit(ev.session_error(err, self.id))

    # ================================================================== client events
    async def handle(self, event: ce.ClientEvent) -> None:
        """Process one client event of an attached session (strict arrival order)."""
        if self.state is State.ENDED:
            return
        if not isinstance(event, ce.InputAudio):
            self.touch()
        match event:
            case ce.InputAudio():
                await self.listener.audio(event.audio)
            case ce.SessionUpdate():
                await self._on_update(event)
            case ce.ToolResult():
                outcome = self.tools.result(event)
                if isinstance(outcome, ProtocolError):
                    self.error(outcome)
                elif outcome is not None:
                    self._settled(outcome)
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
        first = self.legacy_pending_first_update
        try:
            new = await next_config(
                event.session,
                self.config,
                self.settings,
                self.deps.agent_lookup,
                first_after_fallback=first,
            )
        except ProtocolError as err:
            # after the legacy fallback even first-update errors keep the session (App. A)
            self.error(ProtocolError(err.code, err.message, param=err.param))
            return
        self.legacy_pending_first_update = False
        if first and new.agent_id is not None and new.llm and self.deps.llm_factory is not None:
            self._llm = self.deps.llm_factory(new.llm[0])
        greeting_added = first and new.greeting and not self.config.greeting
        self._apply_config(new, event.session or {})
        self.emit(ev.session_updated(self.config.echo()))
        if greeting_added and not self.replies.any_started and self.replies.current is None:
            self.replies.enqueue(ReplyPlan("greeting", self.clock.now()))
            self.replies.start_next()

    def _apply_config(self, new: SessionConfig, raw: dict[str, Any]) -> None:
        prompt_changed = (new.effective_system_prompt, new.all_tools) != (
            self.config.effective_system_prompt,
            self.config.all_tools,
        )
        self.config = new
        self.listener.configure(new)
        current = self.replies.current
        during = current.reply_id if current else None
        self._config_changes.append(config_change(raw, self.clock.wall(), during))
        self._record_changed()
        if prompt_changed:
            self._prefill()

    def _on_message(self, event: ce.ConversationMessage) -> None:
        if len(event.content) > MAX_MESSAGE_CHARS:
            self.error(errors.invalid_value("content", f"at most {MAX_MESSAGE_CHARS} characters"))
            return
        self.replies.drop_speculation()  # the model must see this message
        if event.role == "user":
            self.history.add_user(event.content, ids.item_id())
        else:
            self.history.add_system(event.content)

    def _on_reply_create(self, event: ce.ReplyCreate) -> None:
        if event.instructions is not None and len(event.instructions) > MAX_INSTRUCTIONS_CHARS:
            limit = f"at most {MAX_INSTRUCTIONS_CHARS} characters"
            self.error(errors.invalid_value("instructions", limit))
            return
        if self.replies.queued("reply_create") >= MAX_QUEUED_CREATES:
            self.error(errors.too_many_queued())
            return
        self.replies.enqueue(ReplyPlan("reply_create", self.clock.now(), event.instructions))
        self.replies.start_next()

    def _on_reply_cancel(self, event: ce.ReplyCancel) -> None:
        reply = self.replies.current
        if event.reply_id is not None and not self.replies.knows(event.reply_id):
            self.error(errors.unknown_reply_id(event.reply_id))
            return
        if reply is None or event.reply_id not in (None, reply.reply_id):
            return
        if reply.started:
            self.listener.withdraw_candidate()
        self.replies.cancel(reply)

    # ================================================================== listening → routing
    @property
    def floor_free(self) -> bool:
        return self.state is State.ACTIVE and not self.listener.taker.turn_open

    def floor(self) -> Floor:
        reply = self.replies.current
        if reply is None:
            return Floor.IDLE
        if not reply.speaking:
            return Floor.PREPARING
        if self.config.interrupt_response and not reply.protected:
            return Floor.SPEAKING
        return Floor.SPEAKING_UNINTERRUPTIBLE

    def touch(self) -> None:
        self._last_activity = self.clock.now()

    def on_turn_action(self, action: Action) -> None:
        reply = self.replies.current
        match action:
            case TurnOpened(_, announce):
                if reply is not None and self._writing_interruptibly(reply):
                    # §6.8: a user turn opening during a text reply interrupts it (§11.5)
                    metrics.barge_in()
                    self.emit(ev.speech_started())
                    self.replies.interrupt(reply, notify=True)
                    announce = False
                self.replies.preempt(Preemption.NEW_USER_TURN)
                if announce:
                    self.emit(ev.speech_started())
            case UserPartial(item_id, text):
                if not self.tools.hold_active:
                    self.emit(ev.user_transcript_delta(item_id, text))
                    if getattr(self._llm, "warm", None) is not None:
                        self._warm(self._warmer.offer(text, self.clock.now()))
            case Speculate(text, commit_in_ms):
                self._warmer.turn_ended()
                self.replies.speculate(text, commit_in_ms / 1000)
            case DropSpeculation():
                self.replies.drop_speculation()
            case CommitTurn():
                self._warmer.turn_ended()
                self._commit(action)
            case PauseReply():
                if reply is not None:
                    reply.output.pause()
            case DropCandidate(resume):
                if resume and reply is not None:
                    reply.output.resume()
            case BargeIn():
                metrics.barge_in()
                self.emit(ev.speech_started())
                if reply is not None:
                    self.replies.interrupt(reply, notify=True)

    def _writing_interruptibly(self, reply: Reply) -> bool:
        """A text reply is being written and the user may interrupt it."""
        return (
            reply.text_only
            and reply.started
            and not reply.finished
            and self.config.interrupt_response
            and not reply.protected
        )

    def _commit(self, turn: CommitTurn) -> None:
        metrics.turn_end_latency(max(0.0, turn.ended_wall - turn.speech_end_wall))
        self.emit(ev.speech_stopped())
        text = turn.transcript.text.strip()
        if not text:
            self.replies.start_next()
            return
        plan = ReplyPlan(
            "user_speech",
            self.clock.now(),
            user_item_id=turn.item_id,
            user_text=text,
            user_started_at=turn.started_wall,
            user_ended_at=turn.ended_wall,
            user_confidence=turn.transcript.confidence,
            user_speech_end_at=turn.speech_end_wall,
            stt_final_at=turn.final_wall,
        )
        if self.tools.hold_active:
            self.replies.drop_speculation()
            self.tools.hold(HeldTurn(turn.item_id, text, plan))
        else:
            self.emit(ev.user_transcript(turn.item_id, text))
            self._accept_user_text(turn.item_id, text)
            if not self.replies.adopt(text, plan):
                self.replies.enqueue(plan)
        self.replies.start_next()

    def on_late_turn(self, item_id: str, text: str) -> None:
        self._accept_user_text(item_id, text)
        plan = ReplyPlan("user_speech", self.clock.now(), user_item_id=item_id, user_text=text)
        self.replies.enqueue(plan)
        self.replies.start_next()

    def _accept_user_text(self, item_id: str, text: str) -> None:
        self.history.add_user(text, item_id)
        self.replies.user_spoke()

    # ================================================================== tools → routing
    @property
    def hold_active(self) -> bool:
        return self.tools.hold_active

    def _settled(self, settlement: Settlement) -> None:
        if settlement.reply_id is not None:
            self.replies.followup_if_settled(settlement.reply_id)
        self._release(settlement.released)
        self.replies.start_next()

    def _release(self, held: list[HeldTurn]) -> None:
        for turn in held:
            self.emit(ev.user_transcript(turn.item_id, turn.text))
            self._accept_user_text(turn.item_id, turn.text)

    def calls_cancelled(self, reply: Reply) -> None:
        self._release(self.tools.cancel_calls(reply).released)

    # ================================================================== replies (ReplyHost)
    def build_reply(
        self, plan: ReplyPlan, *, tools: bool, pending_user_text: str | None = None
    ) -> Reply:
        return self._factory.build(plan, tools=tools, pending_user_text=pending_user_text)

    @property
    def _llm(self) -> LLM:
        return self._factory.llm

    @_llm.setter
    def _llm(self, llm: LLM) -> None:
        self._factory.llm = llm

    def _prefill(self) -> None:
        """Let a model that can (the embedded one) cache the system prompt and tools now, so the
        first turn does not pay for them."""
        plan = ReplyPlan("reply_create", self.clock.now())
        request = self._factory.prefill_request(plan, self.replies.tools_allowed)
        prefill = getattr(self._llm, "prefill", None)
        if request is None or prefill is None or self._tg is None:
            return

        async def run() -> None:
            try:
                await prefill(request)
            except Exception:
                log.debug("prefill failed", exc_info=True)

        self.spawn(run())

    def _warm(self, text: str | None) -> None:
        """Evaluate the prompt of the turn so far into the cache of a model that can (the
        embedded one's ``warm``; see prompt_warming): the reply to this turn then evaluates
        only what the final transcript adds."""
        if text is None:
            return
        warm = getattr(self._llm, "warm", None)
        if warm is None or self._tg is None:  # the model changed, or the session stopped
            self._warmer.turn_ended()  # drop what waits, then: nothing is in flight after all
            self._warmer.finished(self.clock.now())
            return
        plan = ReplyPlan("user_speech", self.clock.now(), user_text=text)
        request = self._factory.request(plan, self.replies.tools_allowed, pending_user_text=text)

        async def run() -> None:
            try:
                await warm(request)
            except Exception:
                log.debug("prompt warm-up failed", exc_info=True)
            finally:
                self._warm(self._warmer.finished(self.clock.now()))

        self.spawn(run())

    def reply_started(self, reply: Reply) -> None:
        self.replies.started(reply)

    def reply_audible(self, reply: Reply) -> None:
        self.listener.agent_audible()

    def reply_closed(self, reply: Reply) -> None:
        metrics.output_gaps(reply.output.dry_spells, reply.output.dry_ms / 1000)
        self.listener.agent_done()

    def dispatch_tool_call(self, reply: Reply, call: ToolCallRequest) -> list[str]:
        problems = self.tools.check(call)
        if problems:
            return problems
        if not reply.started:
            self.replies.started(reply)
        self.tools.dispatch(reply, call)
        return []

    def transition_phrase(self, tool_name: str) -> str | None:
        return self.tools.transition_phrase(tool_name)

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
            if self.replies.busy or self.listener.taker.busy:
                self.touch()
            remaining = self._last_activity + limit - self.clock.now()
            if remaining <= 0:
                self.end("idle_timeout")
                return
            await self.clock.sleep(min(remaining, IDLE_CHECK_SECONDS))

    # ================================================================== records
    def record(self) -> SessionRecord:
        ended = self.state is State.ENDED
        status: Literal["active", "disconnected", "ended"] = (
            "ended" if ended else "disconnected" if self.state is State.DETACHED else "active"
        )
        return SessionRecord(
            session_id=self.id,
            agent_id=self.config.agent_id,
            status=status,
            created_at=self.created_wall,
            config=self.config.echo(),
            ended_at=self.ended_wall,
            public_close_reason=self.close_reason,
            timeline=self.timeline() if ended else None,
            recording=(self._recording.to_wav() if self._recording is not None and ended else None),
            # the inline webhook with its secret, for signing deliveries (§19); never stored
            extra={"webhook": dict(self.config.webhook)} if self.config.webhook else {},
        )

    def _record_changed(self) -> None:
        recorder = self.deps.recorder
        if recorder is not None and self._tg is not None:
            self.spawn(recorder.session_changed(self.record()))

    def timeline(self) -> dict[str, Any]:
        facts = SessionFacts(
            self.id, self.created_wall, self.created_mono, self.close_reason, self.ended_wall
        )
        timeline = build_timeline(facts, self.replies.closed_records, self._config_changes)
        timeline["turns"] = self.prior_turns + timeline["turns"]
        timeline["config_changes"] = self.prior_config_changes + timeline["config_changes"]
        return timeline

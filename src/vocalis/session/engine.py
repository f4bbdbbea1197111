"""The session engine: one voice conversation, independent of any socket.

Events in (:meth:`Session.handle` with parsed client events, :meth:`attach`/:meth:`detach` for the
connection), server events out (through the attached :class:`Transport`), time from an injected
:class:`Clock`. Everything a session starts runs in its own task group, so ending it (client
``session.end``, cap, idle, grace expiry, shutdown) cancels all of its work at once.

Turn-taking follows contract §11 on the input-audio timeline: VAD frames drive a small state
machine (continuous speech, silence), user turns open after ``speech_start_ms`` of speech, the
final transcript is decoded as soon as a pause begins, and the turn ends at ``min_silence`` when
it looks complete or at ``max_silence`` regardless. While the agent speaks, speech becomes a
barge-in candidate: the reply pauses once ``interruption_delay`` holds and is interrupted when a
non-backchannel word is recognised (or no word at all after ``backchannel_window_ms``).
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol

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
    INPUT_RATE,
    LLM,
    Audio,
    ChatMessage,
    LLMRequest,
    ProviderSet,
    STTOptions,
    ToolCallRequest,
    ToolSpec,
    Transcript,
)
from vocalis.session.agents import stored_agent_config
from vocalis.session.clock import Clock
from vocalis.session.history import History, ToolCallRecord, encode_result
from vocalis.session.hooks import AgentLookup, HttpToolRunner, SessionRecord, SessionRecorder
from vocalis.session.input import InputStage
from vocalis.session.recording import StereoRecording
from vocalis.session.reply import Reply, ReplyPlan
from vocalis.session.text import has_non_backchannel_word, has_word
from vocalis.session.timeline import ReplyRecord, build_timeline
from vocalis.session.tool_args import check_arguments
from vocalis.settings import Settings

log = logging.getLogger(__name__)

PREROLL_MS = 300  # audio before the detected speech start given to the recogniser (§11.1)
SPEECH_GAP_MS = 100  # a longer non-speech gap ends "continuous speech" (§11.1)
SPECULATE_MS = 128  # start the final decode (and a preemptive reply) this long into a pause
PARTIAL_EVERY_MS = 320  # re-decode the growing turn for partials at most this often
CANDIDATE_PARTIAL_EVERY_MS = 160
STALL_SECONDS = 0.5  # §10.2
MAX_QUEUED_CREATES = 8
MAX_TOOL_ROUNDS = 8


class Transport(Protocol):
    """The connection a session is attached to (the server edge implements it)."""

    def send(self, event: ev.ServerEvent) -> None: ...

    def close(self, code: int) -> None: ...


class State(Enum):
    ACTIVE = "active"
    DETACHED = "disconnected"
    ENDED = "ended"


@dataclass
class UserTurn:
    item_id: str
    audio_start: int  # absolute 16 kHz sample index, pre-roll included
    started_wall: float
    partial: str = ""
    last_partial_at: int = 0
    partial_task: asyncio.Task[None] | None = None
    check_task: asyncio.Task[None] | None = None
    result: tuple[Transcript, bool] | None = None
    final_at: float | None = None  # wall time the final transcript was ready
    min_reached: bool = False
    max_reached: bool = False


@dataclass
class BargeCandidate:
    start: int  # sample index of the segment start
    partial: str = ""
    paused: bool = False
    ended: bool = False  # the speech stopped while its transcript was pending
    last_partial_at: int = 0
    partial_task: asyncio.Task[None] | None = None


@dataclass
class Speculation:
    """A reply generated ahead of the turn's commit (see ``Session._speculate``)."""

    text: str
    reply: Reply
    task: asyncio.Task[None]


@dataclass
class HeldTurn:
    """A user turn closed during a ``hold`` tool call: its transcript waits (§13.5)."""

    item_id: str
    text: str
    plan: ReplyPlan


class Session:
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
        self.config = new
        self._config_changes.append(
            {
                "received_at_ms": int(self.clock.wall() * 1000),
                "during_turn_id": self._current.reply_id if self._current else None,
                "update": _redact(raw),
            }
        )
        self._record_changed()

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

    # ================================================================== input audio
    async def _on_audio(self, b64: str) -> None:
        if not b64:
            return
        try:
            raw = binascii.a2b_base64(b64, strict_mode=True)
        except (binascii.Error, ValueError):
            self.error(errors.invalid_audio())
            return
        before = self._input.accepted_seconds
        frames, dropped = self._input.accept(raw)
        metrics.input_audio(self._input.accepted_seconds - before)
        if dropped:
            now = self.clock.now()
            if now - self._last_rate_error >= 1.0:
                self._last_rate_error = now
                self.error(errors.audio_rate_violation())
        if len(frames):
            if self._recording is not None:
                self._recording.add_user(frames)
            probs = await self._vad.probabilities(frames)
            await self._process_frames(probs, self._input.ring.end - len(frames))

    async def _stall_watchdog(self) -> None:
        while True:
            await self.clock.sleep(0.1)
            if self.state is not State.ACTIVE:
                continue
            frames = self._input.silence_gap(STALL_SECONDS)
            if len(frames):
                if self._recording is not None:
                    self._recording.add_user(frames)
                n = self.providers.vad.frame_samples
                probs = [0.0] * (len(frames) // n)
                await self._process_frames(probs, self._input.ring.end - len(frames))

    async def _process_frames(self, probs: list[float], first_sample: int) -> None:
        async with self._frame_lock:
            n = self.providers.vad.frame_samples
            for i, prob in enumerate(probs):
                if self.state is State.ENDED:
                    return
                self._on_frame(prob, first_sample + i * n, first_sample + (i + 1) * n)

    def _on_frame(self, prob: float, start: int, end: int) -> None:
        gap_max = SPEECH_GAP_MS * INPUT_RATE // 1000
        if prob >= self.config.vad_threshold:
            if self._run_start is None or self._gap > gap_max:
                self._run_start = start
            self._gap = 0
            self._last_speech_end = end
            self._last_speech_wall = self.clock.wall()
            self._on_speech(end)
        else:
            self._gap += end - start
            if self._run_start is not None and self._gap > gap_max:
                self._run_start = None
                self._candidate_segment_ended()
            if self._turn is not None:
                self._on_silence(end)

    def _on_speech(self, now_sample: int) -> None:
        assert self._run_start is not None
        self._last_activity = self.clock.now()
        turn = self._turn
        if turn is not None:
            if turn.check_task is not None or turn.result is not None:
                if turn.check_task is not None:
                    turn.check_task.cancel()
                turn.check_task, turn.result = None, None
                turn.min_reached = turn.max_reached = False
                self._cancel_speculation()
            self._maybe_partial(turn, now_sample)
            return
        if self._candidate is not None:
            self._candidate.ended = False
            self._update_candidate(now_sample)
            return
        reply = self._current
        if reply is not None and reply.speaking:
            if self._barge_in_allowed(reply):
                self._candidate = BargeCandidate(self._run_start)
                self._update_candidate(now_sample)
            return
        run_ms = (now_sample - self._run_start) * 1000 // INPUT_RATE
        if run_ms >= self.settings.speech_start_ms:
            self._open_turn(self._run_start, announce=True)

    def _on_silence(self, now_sample: int) -> None:
        turn = self._turn
        assert turn is not None
        silence_ms = (now_sample - self._last_speech_end) * 1000 // INPUT_RATE
        lo, hi = self.config.silence_ms
        if turn.check_task is None and turn.result is None and silence_ms >= min(SPECULATE_MS, lo):
            audio = self._input.ring.read(turn.audio_start, self._last_speech_end)
            turn.check_task = self._spawn(self._check_turn(turn, audio))
        if silence_ms >= hi:
            turn.max_reached = True
        if silence_ms >= lo:
            turn.min_reached = True
        self._maybe_end_turn(turn)

    # ------------------------------------------------------------------ user turns
    def _open_turn(self, segment_start: int, *, announce: bool) -> None:
        reply = self._current
        if reply is not None and not reply.started:
            self._discard_unstarted(reply, requeue=reply.plan.trigger != "user_speech")
        self._queue = deque(p for p in self._queue if p.trigger != "user_speech")
        preroll = PREROLL_MS * INPUT_RATE // 1000
        self._turn = UserTurn(
            ids.item_id(), max(0, segment_start - preroll), self.clock.wall(), last_partial_at=0
        )
        if announce:
            self.emit(ev.speech_started())

    def _maybe_partial(self, turn: UserTurn, now_sample: int) -> None:
        # keep partial decoding under about half of the CPU, so a final is never queued long
        every_ms = max(PARTIAL_EVERY_MS, 2000 * self._partial_cost)
        every = int(every_ms * INPUT_RATE / 1000)
        if turn.partial_task is not None or now_sample - turn.last_partial_at < every:
            return
        turn.last_partial_at = now_sample
        audio = self._input.ring.read(turn.audio_start)
        turn.partial_task = self._spawn(self._partial(turn, audio))

    async def _partial(self, turn: UserTurn, audio: Audio) -> None:
        started = self.clock.now()
        try:
            result = await self.providers.stt.transcribe(audio, self._stt_options(), final=False)
        finally:
            turn.partial_task = None
        self._partial_cost = 0.5 * self._partial_cost + 0.5 * (self.clock.now() - started)
        text = result.text.strip()
        if self._turn is turn and text and text != turn.partial:
            turn.partial = text
            if not self._hold_active():
                self.emit(ev.user_transcript_delta(turn.item_id, text))

    async def _check_turn(self, turn: UserTurn, audio: Audio) -> None:
        transcript = await self.providers.stt.transcribe(audio, self._stt_options(), final=True)
        complete = True
        text = transcript.text.strip()
        if text and self.config.turn_type == "semantic_vad":
            prob = await self.providers.turn.completion_probability(audio, text)
            complete = prob >= 0.5
        turn.check_task = None
        turn.final_at = self.clock.wall()
        turn.result = (transcript, complete)
        if self._turn is turn:
            if complete and text:
                self._speculate(text)
            self._maybe_end_turn(turn)

    def _maybe_end_turn(self, turn: UserTurn) -> None:
        if turn.result is None or not (turn.min_reached or turn.max_reached):
            return
        transcript, complete = turn.result
        if complete or turn.max_reached:
            self._commit_turn(turn, transcript)

    def _commit_turn(self, turn: UserTurn, transcript: Transcript) -> None:
        self._turn = None
        metrics.turn_end_latency(max(0.0, self.clock.wall() - self._last_speech_wall))
        if turn.partial_task is not None:
            turn.partial_task.cancel()
        self.emit(ev.speech_stopped())
        text = transcript.text.strip()
        if not text:
            self._maybe_start_reply()
            return
        plan = ReplyPlan(
            "user_speech",
            self.clock.now(),
            user_item_id=turn.item_id,
            user_text=text,
            user_started_at=turn.started_wall,
            user_ended_at=self.clock.wall(),
            user_confidence=transcript.confidence,
            user_speech_end_at=self._last_speech_wall,
            stt_final_at=turn.final_at,
        )
        if self._hold_active():
            self._cancel_speculation()
            self._held.append(HeldTurn(turn.item_id, text, plan))
        else:
            self.emit(ev.user_transcript(turn.item_id, text))
            spec = self._take_speculation(text)
            if spec is None:
                self._accept_user_text(turn.item_id, text, plan)
            else:
                self._accept_user_text(turn.item_id, text, None)
                spec.reply.plan = plan
                self._current, self._reply_task = spec.reply, spec.task
                spec.reply.open_gate()
        self._maybe_start_reply()

    # ------------------------------------------------------------------ preemptive replies
    def _speculate(self, text: str) -> None:
        """Start the reply to a turn that looks complete while the silence timer still runs.

        It is generated and synthesised behind a gate; the turn's commit opens the gate if the
        final text is the same, so the reply is ready when the turn ends. Otherwise it is dropped.
        """
        self._cancel_speculation()
        if self._current is not None or self._queue or self._hold_active() or self._tg is None:
            return
        plan = ReplyPlan("user_speech", self.clock.now(), user_text=text)
        reply = self._make_reply(plan, pending_user_text=text)
        reply.gate = asyncio.Event()
        self._spec = Speculation(text, reply, self._spawn(self._run_reply(reply)))

    def _take_speculation(self, text: str) -> Speculation | None:
        spec, self._spec = self._spec, None
        if spec is None:
            return None
        if spec.text == text and self._current is None and not self._queue:
            return spec
        spec.task.cancel()
        return None

    def _cancel_speculation(self) -> None:
        spec, self._spec = self._spec, None
        if spec is not None:
            spec.reply.finished = True
            spec.task.cancel()

    def _accept_user_text(self, item_id: str, text: str, plan: ReplyPlan | None) -> None:
        self.history.add_user(text, item_id)
        self._tool_rounds = 0
        if plan is not None:
            self._queue_plan(plan)

    async def _close_turn_silently(self, turn: UserTurn) -> None:
        """A turn open at a disconnect still counts (§14.1): its text enters the history."""
        audio = self._input.ring.read(turn.audio_start, self._last_speech_end)
        transcript = await self.providers.stt.transcribe(audio, self._stt_options(), final=True)
        text = transcript.text.strip()
        if text:
            plan = ReplyPlan("user_speech", self.clock.now(), user_item_id=turn.item_id)
            plan.user_text = text
            self._accept_user_text(turn.item_id, text, plan)
            self._maybe_start_reply()

    def _stt_options(self) -> STTOptions:
        cfg = self.config
        return STTOptions(
            prompt=cfg.transcription_prompt,
            keyterms=cfg.keyterms or (),
            language_codes=cfg.language_codes or (),
            accurate=cfg.transcription_mode == "max_accuracy",
        )

    # ------------------------------------------------------------------ barge-in
    def _barge_in_allowed(self, reply: Reply) -> bool:
        return self.config.interrupt_response and not reply.protected

    def _update_candidate(self, now_sample: int) -> None:
        cand = self._candidate
        reply = self._current
        if cand is None or reply is None:
            return
        during_ms = (now_sample - max(cand.start, self._agent_speech_from)) * 1000 // INPUT_RATE
        if during_ms < self.config.interruption_delay_ms:
            return
        if not cand.paused:
            cand.paused = True
            reply.output.pause()
        words = self.settings.backchannel_words
        if has_non_backchannel_word(cand.partial, words) or (
            during_ms >= self.settings.backchannel_window_ms and not has_word(cand.partial)
        ):
            self._barge_in(cand, reply)
            return
        every = CANDIDATE_PARTIAL_EVERY_MS * INPUT_RATE // 1000
        if cand.partial_task is None and (
            now_sample - cand.last_partial_at >= every or not cand.last_partial_at
        ):
            cand.last_partial_at = now_sample
            preroll = PREROLL_MS * INPUT_RATE // 1000
            audio = self._input.ring.read(max(0, cand.start - preroll))
            cand.partial_task = self._spawn(self._candidate_partial(cand, audio, now_sample))

    async def _candidate_partial(self, cand: BargeCandidate, audio: Audio, at: int) -> None:
        try:
            result = await self.providers.stt.transcribe(audio, self._stt_options(), final=False)
        finally:
            cand.partial_task = None
        if self._candidate is not cand:
            return
        cand.partial = result.text.strip()
        if not cand.ended:
            self._update_candidate(max(at, self._last_speech_end))
        elif has_non_backchannel_word(cand.partial, self.settings.backchannel_words):
            reply = self._current
            if reply is not None:
                self._barge_in(cand, reply)
        else:
            self._drop_candidate()

    def _candidate_segment_ended(self) -> None:
        """The speech stopped: a paused reply waits for the words still being recognised.

        A short phrase ("wait, …") can end before its transcript is ready; it still interrupts
        if the transcript has a real word. A cough or a backchannel lets the reply resume.
        """
        cand = self._candidate
        if cand is not None and cand.paused and cand.partial_task is not None:
            cand.ended = True
            return
        self._drop_candidate()

    def _drop_candidate(self) -> None:
        """A segment that ends without a barge-in leaves no trace; the reply resumes."""
        cand, self._candidate = self._candidate, None
        if cand is None:
            return
        if cand.partial_task is not None:
            cand.partial_task.cancel()
        if cand.paused and self._current is not None:
            self._current.output.resume()

    def _barge_in(self, cand: BargeCandidate, reply: Reply) -> None:
        """§11.5: stop the reply, open the user turn, report the played text, cancel calls."""
        self._candidate = None
        if cand.partial_task is not None:
            cand.partial_task.cancel()
        metrics.barge_in()
        self.emit(ev.speech_started())
        self._interrupt(reply, notify=True)
        self._open_turn(cand.start, announce=False)
        turn = self._turn
        if turn is not None and cand.partial:
            turn.partial = cand.partial
            if not self._hold_active():
                self.emit(ev.user_transcript_delta(turn.item_id, cand.partial))

    # ================================================================== replies
    def _queue_plan(self, plan: ReplyPlan) -> None:
        self._queue.append(plan)

    def _hold_active(self) -> bool:
        return any(
            c.status == "pending" and c.execution_mode == "hold" for c in self._calls.values()
        )

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

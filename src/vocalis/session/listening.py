"""Listening: input audio, turn-taking (§10.2–10.3, §11) and barge-in, as a part of the session.

Turn-taking runs on the input-audio timeline: VAD frames drive a small state machine (continuous
speech, silence), a user turn opens after ``speech_start_ms`` of speech, the final transcript is
decoded as soon as a pause begins (and a preemptive reply generated behind a gate), and the turn
ends at ``min_silence`` when it looks complete or at ``max_silence`` regardless. While the agent
speaks, speech becomes a barge-in candidate: the reply pauses once ``interruption_delay`` holds
and is interrupted when a non-backchannel word is recognised (or no word after
``backchannel_window_ms``).
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vocalis import ids, metrics
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev
from vocalis.providers.base import INPUT_RATE, Audio, STTOptions, Transcript
from vocalis.session.lifecycle import State
from vocalis.session.reply import Reply, ReplyPlan
from vocalis.session.text import has_non_backchannel_word, has_word
from vocalis.session.tools import HeldTurn

if TYPE_CHECKING:
    from vocalis.protocol.config import SessionConfig
    from vocalis.protocol.errors import ProtocolError
    from vocalis.providers.base import ProviderSet, VADStream
    from vocalis.session.clock import Clock
    from vocalis.session.history import History
    from vocalis.session.input import InputStage
    from vocalis.session.recording import StereoRecording
    from vocalis.settings import Settings

log = logging.getLogger(__name__)

PREROLL_MS = 300  # audio before the detected speech start given to the recogniser (§11.1)
SPEECH_GAP_MS = 100  # a longer non-speech gap ends "continuous speech" (§11.1)
SPECULATE_MS = 128  # start the final decode (and a preemptive reply) this long into a pause
PARTIAL_EVERY_MS = 320  # re-decode the growing turn for partials at most this often
CANDIDATE_PARTIAL_EVERY_MS = 160
STALL_SECONDS = 0.5  # §10.2


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
    heard_to: int = 0  # sample index the latest finished partial transcript covers
    last_partial_at: int = 0
    partial_task: asyncio.Task[None] | None = None


@dataclass
class Speculation:
    """A reply generated ahead of the turn's commit (see ``Listening._speculate``)."""

    text: str
    reply: Reply
    task: asyncio.Task[None]


class Listening:
    """The session's ears. Mixed into :class:`~vocalis.session.engine.Session`."""

    if TYPE_CHECKING:
        config: SessionConfig
        settings: Settings
        providers: ProviderSet
        clock: Clock
        state: State
        history: History
        _input: InputStage
        _vad: VADStream
        _recording: StereoRecording | None
        _frame_lock: asyncio.Lock
        _run_start: int | None
        _gap: int
        _last_speech_end: int
        _last_speech_wall: float
        _agent_speech_from: int
        _turn: UserTurn | None
        _candidate: BargeCandidate | None
        _partial_cost: float
        _spec: Speculation | None
        _last_rate_error: float
        _last_activity: float
        _current: Reply | None
        _queue: deque[ReplyPlan]
        _held: list[HeldTurn]
        _tool_rounds: int
        _tg: asyncio.TaskGroup | None

        def emit(self, event: ev.ServerEvent) -> None: ...
        def error(self, err: ProtocolError) -> None: ...
        def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...
        def _hold_active(self) -> bool: ...
        def _maybe_start_reply(self) -> None: ...
        def _queue_plan(self, plan: ReplyPlan) -> None: ...
        def _make_reply(self, plan: ReplyPlan, pending_user_text: str | None = None) -> Reply: ...
        async def _run_reply(self, reply: Reply) -> None: ...
        def _interrupt(self, reply: Reply, *, notify: bool) -> None: ...
        def _discard_unstarted(self, reply: Reply, *, requeue: bool) -> None: ...

        _reply_task: asyncio.Task[None] | None

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
            plan = ReplyPlan(
                "user_speech", self.clock.now(), user_item_id=turn.item_id, user_text=text
            )
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
        # "no word after backchannel_window_ms" is judged on a transcript that covers that much
        # speech: with a recogniser that takes ~0.5 s, the audio is paused meanwhile anyway
        heard_ms = (cand.heard_to - max(cand.start, self._agent_speech_from)) * 1000 // INPUT_RATE
        if has_non_backchannel_word(cand.partial, words) or (
            heard_ms >= self.settings.backchannel_window_ms and not has_word(cand.partial)
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
        cand.heard_to = at
        log.debug("barge-in candidate heard %r", cand.partial)
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

"""The session's ears: the input pipeline and the async shell around the turn-taking core.

``input.audio`` is decoded, resampled to 16 kHz and cut into VAD frames (:mod:`.input`); each
frame's speech probability goes to the :class:`~vocalis.session.turns.TurnTaker`, and the actions
it answers are carried out here when they concern recognition (start or cancel a decode, through
the :class:`~vocalis.session.transcriber.Transcriber`) and handed to the session otherwise
(open or commit a turn, pause or interrupt the reply…). Results of decodes go back to the turn
taker, whose answers are carried out the same way.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from vocalis import ids, metrics
from vocalis.audio.levels import frame_rms
from vocalis.protocol import errors
from vocalis.providers.base import STTOptions, Transcript
from vocalis.session.end_of_turn import expected_entities
from vocalis.session.input import InputStage
from vocalis.session.lifecycle import State
from vocalis.session.transcriber import Spawn, Transcriber
from vocalis.session.turn_actions import (
    Action,
    CancelFinal,
    CancelVerdict,
    CommitTurn,
    DropCandidate,
    Floor,
    OpenTurn,
    WantCandidatePartial,
    WantFinal,
    WantPartial,
    WantVerdict,
)
from vocalis.session.turns import TurnRules, TurnTaker

if TYPE_CHECKING:
    from vocalis.protocol.config import SessionConfig
    from vocalis.protocol.errors import ProtocolError
    from vocalis.providers.base import ProviderSet
    from vocalis.session.clock import Clock
    from vocalis.session.recording import StereoRecording
    from vocalis.settings import Settings

log = logging.getLogger(__name__)

STALL_SECONDS = 0.5  # a stream silent this long is filled with silence (§10.2)
STALL_CHECK_SECONDS = 0.1
RATE_ERROR_EVERY_SECONDS = 1.0  # at most one audio_rate_violation per second (§10.3)


class ListenerHost(Protocol):
    """What the listener needs from its session."""

    @property
    def config(self) -> SessionConfig: ...

    @property
    def state(self) -> State: ...

    def error(self, err: ProtocolError) -> None: ...

    def floor(self) -> Floor: ...

    def touch(self) -> None:
        """The user did something: the idle timer starts again."""

    def on_turn_action(self, action: Action) -> None:
        """Carry out a turn-taking decision that is not about recognition."""

    def on_late_turn(self, item_id: str, text: str) -> None:
        """A turn cut short by a disconnect was transcribed (§14.1)."""


def turn_rules(config: SessionConfig, settings: Settings) -> TurnRules:
    lo, hi = config.silence_ms
    return TurnRules(
        vad_threshold=config.vad_threshold,
        min_silence_ms=lo,
        max_silence_ms=hi,
        speech_start_ms=settings.speech_start_ms,
        interruption_delay_ms=config.interruption_delay_ms,
        backchannel_window_ms=settings.backchannel_window_ms,
        backchannel_words=tuple(settings.backchannel_words),
        semantic=config.turn_type == "semantic_vad",
        expected=expected_entities(t.parameters for t in config.all_tools),
        quiet_backdate_ms=settings.turn_quiet_backdate_ms,
    )


class Listener:
    def __init__(
        self,
        host: ListenerHost,
        providers: ProviderSet,
        settings: Settings,
        clock: Clock,
        spawn: Spawn,
        recording: StereoRecording | None,
    ) -> None:
        config = host.config
        self._host = host
        self._settings = settings
        self._clock = clock
        self._spawn = spawn
        self._recording = recording
        self._frame_samples = providers.vad.frame_samples
        self.input = InputStage(
            config.input_format.encoding,
            clock,
            settings.input_audio_max_ahead_ms,
            providers.vad.frame_samples,
        )
        self._vad = providers.vad.open_stream()
        self.taker = TurnTaker(turn_rules(config, settings), ids.item_id)
        self._stt = Transcriber(providers.stt, providers.turn, clock, spawn)
        self._frame_lock = asyncio.Lock()  # frames are fed in order, one batch at a time
        self._last_rate_error = -1e9

    def configure(self, config: SessionConfig) -> None:
        """A ``session.update`` changed the configuration."""
        if config.input_format.encoding != self.input.encoding:
            self.input.set_encoding(config.input_format.encoding)
        self.taker.rules = turn_rules(config, self._settings)

    # ------------------------------------------------------------------ input audio
    @property
    def enabled(self) -> bool:
        """A text-input session does not listen: audio is dropped, no VAD or STT runs (§6.8)."""
        return self._host.config.input_type == "audio"

    async def audio(self, b64: str) -> None:
        """One ``input.audio`` payload (§10.1–§10.3)."""
        if not b64 or not self.enabled:
            return
        try:
            raw = binascii.a2b_base64(b64, strict_mode=True)
        except (binascii.Error, ValueError):
            self._host.error(errors.invalid_audio())
            return
        before = self.input.accepted_seconds
        frames, dropped = self.input.accept(raw)
        metrics.input_audio(self.input.accepted_seconds - before)
        if dropped:
            now = self._clock.now()
            if now - self._last_rate_error >= RATE_ERROR_EVERY_SECONDS:
                self._last_rate_error = now
                self._host.error(errors.audio_rate_violation())
        if len(frames):
            if self._recording is not None:
                self._recording.add_user(frames)
            probs = await self._vad.probabilities(frames)
            levels: list[float] = []
            if self.taker.rules.quiet_backdate_ms:  # only then do levels change anything
                levels = frame_rms(frames, self._frame_samples).tolist()
            await self._frames(probs, self.input.ring.end - len(frames), levels)

    async def watch_stalls(self) -> None:
        """A client that stops streaming is heard as silence after a while (§10.2)."""
        if not self.enabled:
            return  # input.type is fixed by the first update
        while True:
            await self._clock.sleep(STALL_CHECK_SECONDS)
            if self._host.state is not State.ACTIVE:
                continue
            frames = self.input.silence_gap(STALL_SECONDS)
            if len(frames):
                if self._recording is not None:
                    self._recording.add_user(frames)
                probs = [0.0] * (len(frames) // self._frame_samples)
                await self._frames(probs, self.input.ring.end - len(frames))

    async def _frames(
        self, probs: list[float], first_sample: int, levels: Sequence[float] = ()
    ) -> None:
        """Feed the turn-taker one VAD frame at a time; ``levels`` are the frames' RMS (none
        for the silence a stalled client is heard as)."""
        async with self._frame_lock:
            n = self._frame_samples
            threshold = self.taker.rules.vad_threshold
            for i, prob in enumerate(probs):
                if self._host.state is State.ENDED:
                    return
                if prob >= threshold:
                    self._host.touch()
                start = first_sample + i * n
                wall = self._clock.wall()
                level = levels[i] if i < len(levels) else None
                floor = self._host.floor()
                self.apply(self.taker.frame(prob, start, start + n, wall, floor, level))

    # ------------------------------------------------------------------ the agent's side
    def agent_audible(self) -> None:
        self.taker.agent_audible(self.input.ring.end)

    def agent_done(self) -> None:
        self.apply(self.taker.agent_done(self.input.ring.end))

    def withdraw_candidate(self) -> None:
        self.apply(self.taker.withdraw_candidate())

    def detach(self) -> None:
        """The connection is gone: an open turn is transcribed and kept (§14.1)."""
        actions, turn = self.taker.detach()
        self.apply(actions)
        if turn is not None:
            self._spawn(self._close_turn(turn))

    async def _close_turn(self, turn: OpenTurn) -> None:
        audio = self.input.ring.read(turn.start, turn.end)
        transcript = await self._stt.final_now(audio, self.stt_options())
        text = transcript.text.strip()
        if text:
            self._host.on_late_turn(turn.item_id, text)

    # ------------------------------------------------------------------ carrying out actions
    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case WantPartial(item_id, start):
                    audio = self.input.ring.read(start)
                    self._stt.partial(audio, self.stt_options(), self._partial_done(item_id))
                case WantFinal(item_id, start, end):
                    audio = self.input.ring.read(start, end)
                    self._stt.final(audio, self.stt_options(), self._final_done(item_id))
                case CancelFinal():
                    self._stt.cancel_final()
                case WantVerdict(item_id, start, end, text):
                    audio = self.input.ring.read(start, end)
                    self._stt.verdict(audio, text, self._verdict_done(item_id))
                case CancelVerdict():
                    self._stt.cancel_verdict()
                case WantCandidatePartial(serial, start, at):
                    audio = self.input.ring.read(start)
                    self._stt.candidate(audio, self.stt_options(), self._heard(serial, at))
                case DropCandidate():
                    self._stt.cancel_candidate()
                    self._host.on_turn_action(action)
                case CommitTurn():
                    self._stt.cancel_partial()
                    self._host.on_turn_action(action)
                case _:
                    self._host.on_turn_action(action)

    def _partial_done(self, item_id: str) -> Callable[[str, float], None]:
        return lambda text, cost: self.apply(self.taker.partial_heard(item_id, text, cost))

    def _final_done(self, item_id: str) -> Callable[[Transcript], None]:
        def done(transcript: Transcript) -> None:
            self.apply(self.taker.final_heard(item_id, transcript, self._clock.wall()))

        return done

    def _verdict_done(self, item_id: str) -> Callable[[float | None], None]:
        def done(probability: float | None) -> None:
            self.apply(self.taker.verdict_heard(item_id, probability, self._clock.wall()))

        return done

    def _heard(self, serial: int, at: int) -> Callable[[str], None]:
        def done(text: str) -> None:
            log.debug("barge-in candidate heard %r", text)
            wall, floor = self._clock.wall(), self._host.floor()
            self.apply(self.taker.candidate_heard(serial, text, at, wall, floor))

        return done

    def stt_options(self) -> STTOptions:
        cfg = self._host.config
        return STTOptions(
            prompt=cfg.transcription_prompt,
            keyterms=cfg.keyterms or (),
            language_codes=cfg.language_codes or (),
            accurate=cfg.transcription_mode == "max_accuracy",
        )

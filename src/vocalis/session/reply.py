"""One agent reply: model text → sentences → speech → paced chunks, and tool calls on the way.

A reply runs as one task with two children: the *producer* (LLM stream, sentence cutting, TTS,
resampling) and the *pacer* (sends chunks at real-time pace with their word deltas). Everything
the reply tells the client goes through its host (the session), which owns ids, history and tool
calls. Interruption is decided by the host: it reads :meth:`Reply.played_text` and cancels the
task, so a cancelled reply never emits another event.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal, Protocol

import numpy as np

from vocalis.audio import Encoder, StreamResampler
from vocalis.protocol import server_events as ev
from vocalis.providers.base import (
    LLM,
    TTS,
    Audio,
    ChatMessage,
    LLMError,
    LLMRequest,
    TextDelta,
    ToolCallRequest,
)
from vocalis.providers.scheduling import Priority, work_priority
from vocalis.session.clock import Clock
from vocalis.session.history import ToolCallRecord
from vocalis.session.output import OutChunk, ReplyOutput
from vocalis.session.speech_text import speech_text
from vocalis.session.text import SentenceSplitter, TimedWord, time_words

log = logging.getLogger(__name__)

Trigger = Literal["greeting", "user_speech", "tool_result", "reply_create"]
MAX_TOOL_RETRIES = 2
MAX_CALLS_PER_REPLY = 16
#: A reply prepared during the pause cuts its first piece short (``FIRST_WAITING_WORDS``) from
#: this long before the turn is due to end: about what synthesising those words takes, so the
#: piece is ready as the caller starts to wait instead of ~40 ms a word later.
FIRST_PIECE_LEAD_S = 0.15
#: A later piece is synthesised right after other replies' first pieces, ahead of their later
#: sentences (and is not held back for their first words, up to ``MAX_HOLD_S``), when its
#: listener has less than this much audio left to hear: about a short piece's synthesis on two
#: busy cores plus that hold. Behind first pieces, not beside them: synthesised as first
#: pieces (4 callers at once, 2 runs each way, ``bench_load --pool``), v2v read P50 2.07 /
#: P95 3.93 s against 2.23 / 3.25 s for the tree before; after them, 1.69 / 2.48 s against
#: 1.68 / 2.81 s (3 runs each way, a quieter hour).
URGENT_RUNWAY_MS = 1500


class Preemption(Enum):
    """Why a reply that nobody has heard yet is taken off the floor."""

    NEW_USER_TURN = "new_user_turn"  # the user started speaking
    DISCONNECT = "disconnect"  # the connection dropped; the session waits for a resume
    CLIENT_CANCEL = "client_cancel"  # ``reply.cancel`` (§7.6)


@dataclass
class ReplyPlan:
    """A queued reply (§12.1): no ids until it starts."""

    trigger: Trigger
    queued_at: float  # monotonic: the trigger instant, for time-to-first-audio
    instructions: str | None = None
    user_item_id: str | None = None  # the user turn that triggered it
    user_text: str | None = None
    user_started_at: float | None = None  # wall seconds
    user_ended_at: float | None = None
    user_confidence: float | None = None
    user_speech_end_at: float | None = None  # wall: last speech frame of the turn
    stt_final_at: float | None = None  # wall: final transcript ready
    carrying_reply_id: str | None = None  # tool_result follow-ups: the reply with the calls

    def survives(self, cause: Preemption) -> bool:
        """Whether this plan, not heard yet, stays queued when ``cause`` preempts it.

        The one place that decides it: a cancel drops the plan; new user speech supersedes a
        reply to earlier speech but not a greeting, a follow-up or a requested reply; a
        disconnect keeps everything for the resume.
        """
        if cause is Preemption.CLIENT_CANCEL:
            return False
        if cause is Preemption.NEW_USER_TURN:
            return self.trigger != "user_speech"
        return True

    def follows(self, reply_id: str) -> bool:
        """A follow-up of ``reply_id``'s tool calls: it dies with an interruption of that reply."""
        return self.carrying_reply_id == reply_id


class ReplyHost(Protocol):
    """What a reply needs from its session."""

    def reply_started(self, reply: Reply) -> None: ...

    def emit(self, event: ev.ServerEvent) -> None: ...

    def dispatch_tool_call(self, reply: Reply, call: ToolCallRequest) -> list[str]: ...

    def transition_phrase(self, tool_name: str) -> str | None: ...

    def agent_audio_sent(self, reply: Reply, samples: Audio, start_ms: float) -> None: ...

    @property
    def output_volume(self) -> float: ...


@dataclass
class ReplyTimings:
    first_llm_token: float | None = None  # monotonic
    first_piece: float | None = None  # the first text handed to the voice
    first_tts_audio: float | None = None
    first_audio_sent: float | None = None


@dataclass
class Reply:
    plan: ReplyPlan
    host: ReplyHost
    clock: Clock
    tts: TTS
    voice: str
    output_encoding: str
    output_rate: int
    chunk_ms: int
    lead_ms: int
    llm: LLM | None = None
    request: LLMRequest | None = None
    text: str | None = None  # fixed text (greeting): spoken verbatim without the LLM
    protected: bool = False  # uninterruptible (greeting listed in uninterruptible_turns)
    text_only: bool = False  # ``output.type: text`` (§6.8): written, never synthesised

    reply_id: str | None = None
    item_id: str | None = None
    calls: list[ToolCallRecord] = field(default_factory=list)
    timings: ReplyTimings = field(default_factory=ReplyTimings)
    error: LLMError | None = None
    finished: bool = False
    gate: asyncio.Event | None = None  # set: the reply may talk to the client (preemptive)
    commit_due: float | None = None  # monotonic: when a preemptive reply's turn should end

    def __post_init__(self) -> None:
        self.output = ReplyOutput(self.clock, self.output_rate, self.chunk_ms, self.lead_ms)
        self._words: list[TimedWord] = []
        self._sent_text: list[str] = []
        self._encoder = Encoder(self.output_encoding)

    def open_gate(self) -> None:
        if self.gate is not None:
            self.gate.set()

    async def _through_gate(self) -> None:
        """A preemptive reply is produced in advance but says nothing until adopted."""
        if self.gate is not None and not self.gate.is_set():
            await self.gate.wait()

    @property
    def adopted(self) -> bool:
        """The reply is the answer to a committed turn (not one prepared during the pause
        that may still be dropped): the caller is waiting for it."""
        return self.gate is None or self.gate.is_set()

    def _caller_waiting(self) -> bool:
        """The caller waits for the first sound, or will by the time a longer first piece
        could be cut: in ``min_latency`` the turn ends ~0.25 s after its reply is started,
        too soon for six words and their synthesis (``SentenceSplitter.FIRST_MAX_WORDS``)."""
        if self.adopted:
            return True
        due = self.commit_due
        return due is not None and self.clock.now() >= due - FIRST_PIECE_LEAD_S

    @property
    def started(self) -> bool:
        return self.reply_id is not None

    @property
    def speaking(self) -> bool:
        """The agent is speaking: audio has gone out and the reply is not finished."""
        return self.output.t_first is not None and not self.finished

    # ------------------------------------------------------------------ texts
    def played_text(self) -> str:
        """Words whose audio started before the playout position (§12.3); for a text reply,
        the text sent so far (§6.8)."""
        if self.text_only:
            return "".join(self._sent_text).rstrip()
        pos = self.output.playout_ms()
        return "".join(w.text for w in self._words if w.start_ms < pos).rstrip()

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Produce and pace the whole reply; returns once its audio has played out."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._produce())
            await self._pace()

    async def _produce(self) -> None:
        try:
            if self.text is not None:
                await self._say(self.text.strip())
            elif self.llm is not None and self.request is not None:
                await self._generate(self.llm, self.request)
        except LLMError as exc:
            self.error = exc
            await self._through_gate()
            self._ensure_started()
            assert self.reply_id is not None
            self.host.emit(
                ev.reply_error(
                    self.reply_id,
                    exc.code,
                    exc.message,
                    retryable=exc.retryable,
                    provider_code=exc.provider_code,
                    provider_param=exc.provider_param,
                    status_code=exc.status_code,
                )
            )
        finally:
            self.output.close()

    async def _generate(self, llm: LLM, request: LLMRequest) -> None:
        splitter = SentenceSplitter()
        for attempt in range(MAX_TOOL_RETRIES + 1):
            rejected: list[tuple[ToolCallRequest, list[str]]] = []
            async for item in llm.stream(request):
                if self.timings.first_llm_token is None:
                    self.timings.first_llm_token = self.clock.now()
                if isinstance(item, TextDelta):
                    if self.text_only:
                        await self._write(item.text)
                        continue
                    pieces = splitter.push(
                        item.text,
                        waiting=self._caller_waiting(),
                        runway_ms=self.output.runway_ms(),
                    )
                    for sentence in pieces:
                        await self._speak(sentence)
                elif isinstance(item, ToolCallRequest):
                    if len(self.calls) >= MAX_CALLS_PER_REPLY:
                        continue
                    await self._through_gate()
                    problems = self.host.dispatch_tool_call(self, item)
                    if problems:
                        rejected.append((item, problems))
                        continue
                    phrase = self.host.transition_phrase(item.name)
                    if phrase and not self._words and not self._sent_text and not splitter.pending:
                        await self._say(phrase)
            if not rejected or attempt == MAX_TOOL_RETRIES:
                break
            request = _with_rejections(request, rejected)
        rest = splitter.flush()
        if rest:
            await self._speak(rest)

    async def _say(self, text: str) -> None:
        """Fixed text (a greeting, a transition phrase): spoken, or written as one delta."""
        if self.text_only:
            await self._write(text)
        else:
            await self._speak(text)

    async def _write(self, piece: str) -> None:
        """A text reply's piece, sent as the model writes it, without timings (§6.8)."""
        if not piece:
            return
        await self._through_gate()
        if self.timings.first_audio_sent is None:
            self.timings.first_audio_sent = self.clock.now()  # first output, for the timeline
        self._ensure_started()
        assert self.reply_id is not None and self.item_id is not None
        self._sent_text.append(piece)
        self.host.emit(ev.agent_transcript_delta(self.reply_id, self.item_id, piece, None, None))

    async def _speak(self, sentence: str) -> None:
        """Synthesise one sentence and queue its audio with word timings.

        The voice is given the sentence as a person would say it (:func:`speech_text`: no
        markup, code or emoji; numbers, symbols and abbreviations in words); the words the
        client sees, and the history keeps, are the model's text (``$5`` is shown as written
        and heard as "five dollars").
        """
        if not sentence.strip():
            return
        spoken = speech_text(sentence)
        priority = self._speech_priority()
        if self.timings.first_piece is None:
            self.timings.first_piece = self.clock.now()
        resampler = StreamResampler(self.tts.sample_rate, self.output_rate)
        parts: list[np.ndarray] = []
        if spoken:  # nothing to say (only emoji or markup): the words go out without audio
            with work_priority(priority):
                async for audio in self.tts.synthesize(spoken, self.voice):
                    if self.timings.first_tts_audio is None:
                        self.timings.first_tts_audio = self.clock.now()
                    parts.append(resampler.process(audio))
        parts.append(resampler.flush())
        samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        offset_ms = round(self.output.produced_ms)
        duration_ms = round(len(samples) * 1000 / self.output_rate)
        words = time_words(sentence, offset_ms, duration_ms)
        self._words.extend(words)
        self.output.add_sentence(samples, words)

    def _speech_priority(self) -> Priority:
        """The first piece stands between the caller and any sound; a later one is urgent
        once the audio before it is nearly heard, and otherwise has that audio as slack."""
        if self.timings.first_piece is None:
            return Priority.FIRST_AUDIO
        runway = self.output.runway_ms()
        if runway is not None and runway < URGENT_RUNWAY_MS:
            return Priority.NEXT_AUDIO
        return Priority.BACKGROUND

    async def _pace(self) -> None:
        while True:
            await self._through_gate()
            chunk = await self.output.next_chunk()
            if chunk is None:
                break
            self._send(chunk)
        await self._through_gate()
        leftover = self.output.take_unchunked_words()
        if leftover:
            self._ensure_started()
            self._send_words(leftover)
        self._ensure_started()  # a reply with no output at all still starts (§12.4)
        await self.output.wait_played_out()

    def _send(self, chunk: OutChunk) -> None:
        self._ensure_started()
        assert self.reply_id is not None
        if self.timings.first_audio_sent is None:
            self.timings.first_audio_sent = self.clock.now()
        self._encoder.volume = self.host.output_volume
        data = base64.b64encode(self._encoder.encode(chunk.samples)).decode("ascii")
        self.output.mark_sent(chunk)
        self.host.emit(ev.reply_audio(self.reply_id, data))
        self.host.agent_audio_sent(self, chunk.samples, chunk.start_ms)
        self._send_words(list(chunk.words))

    def _send_words(self, words: list[TimedWord]) -> None:
        assert self.reply_id is not None and self.item_id is not None
        for word in words:
            self._sent_text.append(word.text)
            self.host.emit(
                ev.agent_transcript_delta(
                    self.reply_id, self.item_id, word.text, word.start_ms, word.end_ms
                )
            )

    def _ensure_started(self) -> None:
        if not self.started:
            self.host.reply_started(self)

    def final_text(self) -> str:
        """The text of a completed reply: exactly the concatenated deltas."""
        return "".join(self._sent_text)


def _with_rejections(
    request: LLMRequest, rejected: list[tuple[ToolCallRequest, list[str]]]
) -> LLMRequest:
    """Give the model its invalid calls back with the problems, so it can re-ask (§13.1)."""
    messages = list(request.messages)
    calls = tuple(
        ToolCallRequest(c.name, c.arguments, c.id or f"rejected_{i}")
        for i, (c, _) in enumerate(rejected)
    )
    messages.append(ChatMessage("assistant", "", tool_calls=calls))
    for call, (_, problems) in zip(calls, rejected, strict=True):
        messages.append(
            ChatMessage(
                "tool",
                "Invalid arguments: " + "; ".join(problems) + ". Ask the user for what is missing.",
                tool_call_id=call.id,
                name=call.name,
            )
        )
    return replace(request, messages=tuple(messages))

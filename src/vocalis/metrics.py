"""Prometheus metrics of contract §17.6, recorded through small typed functions.

The engine calls these functions at its events; ``GET /metrics`` (``vocalis.server.ops``) renders
:data:`REGISTRY`. Labels take values from closed sets only (anything else is counted as
``other``), so no user content, session id or secret can ever become a label value.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal, TypeVar, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from vocalis.protocol.errors import ErrorCode
from vocalis.providers.base import (
    LLM,
    TTS,
    VAD,
    Audio,
    LLMEvent,
    LLMRequest,
    ProviderSet,
    STTOptions,
    Transcript,
    VADStream,
)

_T = TypeVar("_T")

EndReason = Literal[
    "client_end", "max_duration", "idle_timeout", "disconnected", "error", "server_shutdown"
]
ToolOutcome = Literal["result", "error", "timed_out", "cancelled", "http"]
Stage = Literal["vad", "stt", "stt_partial", "turn", "llm_first_token", "tts_first_audio"]

ERROR_CODES: Final = get_args(ErrorCode)  # the codes of §16.1 that Vocalis sends
PROVIDERS: Final = ("fake", "embedded", "external")
OTHER: Final = "other"

# Latency buckets for a voice agent: tens of milliseconds to tens of seconds.
_LATENCY_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

REGISTRY: Final = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

SESSIONS_ACTIVE: Final = Gauge(
    "vocalis_sessions_active",
    "Sessions held by the server (attached or waiting for a resume).",
    registry=REGISTRY,
)
SESSIONS: Final = Counter(
    "vocalis_sessions",
    "Sessions ended, by public close reason.",
    ["reason"],
    registry=REGISTRY,
)
SESSION_ERRORS: Final = Counter(
    "vocalis_session_errors",
    "session.error events sent, by code.",
    ["code"],
    registry=REGISTRY,
)
REPLY_TIME_TO_FIRST_AUDIO: Final = Histogram(
    "vocalis_reply_time_to_first_audio_seconds",
    "From a reply's trigger (end-of-turn commit, tool result, reply.create) to its first audio.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TURN_END_LATENCY: Final = Histogram(
    "vocalis_turn_end_latency_seconds",
    "From the acoustic end of user speech to the end-of-turn commit (input.speech.stopped).",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BARGEINS: Final = Counter(
    "vocalis_bargeins", "Replies interrupted by user speech.", registry=REGISTRY
)
TOOL_CALLS: Final = Counter(
    "vocalis_tool_calls",
    "Tool calls resolved, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
INPUT_AUDIO: Final = Counter(
    "vocalis_input_audio_seconds", "Input audio accepted, in seconds.", registry=REGISTRY
)
OUTPUT_AUDIO: Final = Counter(
    "vocalis_output_audio_seconds", "Reply audio sent, in seconds.", registry=REGISTRY
)
OUTPUT_GAPS: Final = Counter(
    "vocalis_output_audio_gaps",
    "Times a reply's audio ran dry mid-reply: synthesis fell behind the listener.",
    registry=REGISTRY,
)
OUTPUT_GAP_SECONDS: Final = Counter(
    "vocalis_output_audio_gap_seconds",
    "Silence heard mid-reply because synthesis fell behind, in seconds.",
    registry=REGISTRY,
)
CAPACITY_SESSIONS: Final = Gauge(
    "vocalis_capacity_sessions",
    "Session budget of this node (max_sessions, or the provider stack's measured one); 0 = none.",
    registry=REGISTRY,
)
CAPACITY_AVAILABLE: Final = Gauge(
    "vocalis_capacity_available_sessions",
    "New sessions this node would accept now (-1 = no count limit; 0 while overloaded).",
    registry=REGISTRY,
)
LOAD_LAG: Final = Gauge(
    "vocalis_load_lag_seconds",
    "Backlog of the most-behind shared model worker: how long its oldest waiting job has waited.",
    registry=REGISTRY,
)
WORKER_LAG: Final = Gauge(
    "vocalis_worker_lag_seconds",
    "Backlog of each shared model worker (oldest waiting job's wait).",
    ["worker"],
    registry=REGISTRY,
)
EVENT_LOOP_TASKS: Final = Gauge(
    "vocalis_event_loop_tasks",
    "asyncio tasks alive on the server's event loop (a number that only grows is a leak).",
    registry=REGISTRY,
)
ADMISSION_REFUSED: Final = Counter(
    "vocalis_admission_refused",
    "New sessions refused with at_capacity, by reason (full: session budget; overloaded: lag).",
    ["reason"],
    registry=REGISTRY,
)
PROVIDER_LATENCY: Final = Histogram(
    "vocalis_provider_latency_seconds",
    "Latency of one provider call, by provider set and stage.",
    ["provider", "stage"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


def _closed(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def session_started() -> None:
    """A session was created (first ``session.update`` or the legacy fallback)."""
    SESSIONS_ACTIVE.inc()


def session_ended(reason: str) -> None:
    """A session ended with public close ``reason`` (§15.1), attached or not."""
    SESSIONS_ACTIVE.dec()
    SESSIONS.labels(reason=_closed(reason, get_args(EndReason))).inc()


def set_sessions_active(count: int) -> None:
    """Correct the gauge from the session manager's own count (done at each scrape)."""
    SESSIONS_ACTIVE.set(count)


Worker = Literal["vad", "stt", "turn", "tts", "llm"]
RefusalReason = Literal["full", "overloaded"]


def admission_refused(reason: str) -> None:
    """A new session was refused at the door (``at_capacity``)."""
    ADMISSION_REFUSED.labels(reason=_closed(reason, get_args(RefusalReason))).inc()


def set_capacity(
    budget: int, available: int | None, lag_seconds: float, worker_lags: Mapping[str, float]
) -> None:
    """The node's capacity and load, set at each scrape from the manager and the workers."""
    with contextlib.suppress(RuntimeError):  # no running loop: nothing to count
        EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))
    CAPACITY_SESSIONS.set(budget)
    CAPACITY_AVAILABLE.set(-1 if available is None else available)
    LOAD_LAG.set(lag_seconds)
    for name in get_args(Worker):
        WORKER_LAG.labels(worker=name).set(worker_lags.get(name, 0.0))


def session_error(code: str) -> None:
    """A ``session.error`` with ``code`` was sent."""
    SESSION_ERRORS.labels(code=_closed(code, ERROR_CODES)).inc()


def reply_first_audio(seconds: float) -> None:
    """A reply's first ``reply.audio`` went out ``seconds`` after its trigger."""
    REPLY_TIME_TO_FIRST_AUDIO.observe(max(0.0, seconds))


def turn_end_latency(seconds: float) -> None:
    """A user turn was committed ``seconds`` after its speech acoustically ended."""
    TURN_END_LATENCY.observe(max(0.0, seconds))


def barge_in() -> None:
    """User speech interrupted a reply (§11.5)."""
    BARGEINS.inc()


def tool_call(outcome: ToolOutcome) -> None:
    """A tool call was resolved: client ``result`` or ``error``, ``timed_out``, ``cancelled``,
    or ``http`` (a stored agent's HTTP tool, executed by the server)."""
    TOOL_CALLS.labels(outcome=_closed(outcome, get_args(ToolOutcome))).inc()


def input_audio(seconds: float) -> None:
    """``seconds`` of input audio were accepted."""
    if seconds > 0:
        INPUT_AUDIO.inc(seconds)


def output_audio(seconds: float) -> None:
    """``seconds`` of reply audio were sent."""
    if seconds > 0:
        OUTPUT_AUDIO.inc(seconds)


def output_gaps(count: int, seconds: float) -> None:
    """A reply's audio ran dry ``count`` times mid-reply, ``seconds`` of silence in all."""
    if count > 0:
        OUTPUT_GAPS.inc(count)
        OUTPUT_GAP_SECONDS.inc(seconds)


def provider_latency(provider: str, stage: Stage, seconds: float) -> None:
    """One call of the ``stage`` provider of set ``provider`` took ``seconds``."""
    _latency_series(provider, stage).observe(max(0.0, seconds))


@functools.cache
def _latency_series(provider: str, stage: str) -> Any:
    """The labelled histogram, looked up once: VAD timings are recorded for every input
    message of every session, and a label lookup per message was a visible cost."""
    return PROVIDER_LATENCY.labels(
        provider=_closed(provider, PROVIDERS), stage=_closed(stage, get_args(Stage))
    )


_STAGE_PROVIDER: Final = {
    "vad": "vad",
    "stt": "stt",
    "stt_partial": "stt",
    "turn": "turn",
    "llm_first_token": "llm",
    "tts_first_audio": "tts",
}


def provider_label(set_name: str, details: Mapping[str, str], stage: Stage) -> str:
    """The ``provider`` label of ``stage`` for a provider set (``ProviderSet.name`` and
    ``.details``): ``external`` when that stage runs on an external server, else the set's
    base name (``fake``, ``embedded``)."""
    if details.get(_STAGE_PROVIDER.get(stage, stage), "").startswith("external"):
        return "external"
    return set_name.split("+", 1)[0]


# ---------------------------------------------------------------------------------- providers
def timed(providers: ProviderSet) -> ProviderSet:
    """``providers`` with every call timed into ``vocalis_provider_latency_seconds``.

    VAD, turn model and STT calls are timed whole; the LLM to its first event and TTS to its first
    audio of each sentence (what a listener waits for). Anything else is delegated untouched.
    """
    label = functools.partial(provider_label, providers.name, providers.details)
    return dataclasses.replace(
        providers,
        vad=_TimedVAD(providers.vad, label("vad")),
        turn=_TimedTurn(providers.turn, label("turn")),
        stt=_TimedSTT(providers.stt, label("stt")),
        llm=timed_llm(providers.llm, label("llm_first_token")),
        tts=_TimedTTS(providers.tts, label("tts_first_audio")),
    )


def timed_llm(llm: LLM, provider: str) -> LLM:
    """An LLM whose time to first event is recorded (also for a stored agent's custom LLM)."""
    return _TimedLLM(llm, provider)


class _Delegating:
    def __init__(self, inner: Any, provider: str) -> None:
        self._inner = inner
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # aclose, warmup, sample_rate, …


class _TimedVADStream(_Delegating):
    async def probabilities(self, audio: Audio) -> list[float]:
        started = time.perf_counter()
        result: list[float] = await self._inner.probabilities(audio)
        provider_latency(self._provider, "vad", time.perf_counter() - started)
        return result


class _TimedVAD(_Delegating):
    def __init__(self, inner: VAD, provider: str) -> None:
        super().__init__(inner, provider)
        self.frame_samples = inner.frame_samples

    def open_stream(self) -> VADStream:
        return _TimedVADStream(self._inner.open_stream(), self._provider)


class _TimedTurn(_Delegating):
    async def completion_probability(self, audio: Audio, transcript: str) -> float:
        started = time.perf_counter()
        result: float = await self._inner.completion_probability(audio, transcript)
        provider_latency(self._provider, "turn", time.perf_counter() - started)
        return result


class _TimedSTT(_Delegating):
    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        started = time.perf_counter()
        result: Transcript = await self._inner.transcribe(audio, options, final=final)
        stage: Stage = "stt" if final else "stt_partial"
        provider_latency(self._provider, stage, time.perf_counter() - started)
        return result


class _TimedLLM(_Delegating):
    def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        return _first_item_timed(self._inner.stream(request), self._provider, "llm_first_token")


class _TimedTTS(_Delegating):
    def __init__(self, inner: TTS, provider: str) -> None:
        super().__init__(inner, provider)
        self.sample_rate = inner.sample_rate

    def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        return _first_item_timed(
            self._inner.synthesize(text, voice), self._provider, "tts_first_audio"
        )


async def _first_item_timed(
    inner: AsyncIterator[_T], provider: str, stage: Stage
) -> AsyncIterator[_T]:
    """Yield from ``inner``, recording the wait for its first item; closes ``inner`` when closed
    early (a cancelled reply), so the provider releases its resources at once."""
    started = time.perf_counter()
    first = True
    try:
        async for item in inner:
            if first:
                provider_latency(provider, stage, time.perf_counter() - started)
                first = False
            yield item
    finally:
        close = getattr(inner, "aclose", None)
        if close is not None:
            await close()


def render() -> tuple[bytes, str]:
    """The exposition text of every metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _declare_label_values() -> None:
    """Create the known label children at import so every series is scraped from zero."""
    for reason in (*get_args(EndReason), OTHER):
        SESSIONS.labels(reason=reason)
    for code in (*ERROR_CODES, OTHER):
        SESSION_ERRORS.labels(code=code)
    for outcome in get_args(ToolOutcome):
        TOOL_CALLS.labels(outcome=outcome)
    for reason in (*get_args(RefusalReason), OTHER):
        ADMISSION_REFUSED.labels(reason=reason)
    for worker in get_args(Worker):
        WORKER_LAG.labels(worker=worker)


_declare_label_values()

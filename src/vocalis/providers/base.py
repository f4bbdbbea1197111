"""Provider interfaces: the only way the session engine reaches VAD, turn model, STT, LLM and TTS.

Each interface is small and async so an implementation decides where its work runs (inline for the
fakes, a worker thread for embedded models, an HTTP request for external servers). Cancellation is
plain asyncio cancellation: the engine cancels the task awaiting a provider call, or closes the
async iterator it is consuming; implementations release their resources in ``finally`` blocks.

Audio crosses these interfaces as mono ``numpy.float32`` arrays in [-1, 1].
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]

#: Sample rate of audio given to VAD, turn model and STT.
INPUT_RATE = 16_000


# --------------------------------------------------------------------------------------------- VAD
class VADStream(Protocol):
    """Per-session VAD state (recurrent models keep hidden state between frames)."""

    async def probabilities(self, audio: Audio) -> list[float]:
        """Speech probability of each whole frame in ``audio`` (16 kHz, a multiple of
        ``VAD.frame_samples`` long)."""
        ...


class VAD(Protocol):
    frame_samples: int  # samples per frame at 16 kHz (512 = 32 ms for Silero)

    def open_stream(self) -> VADStream: ...


# ------------------------------------------------------------------------------------ turn model
class TurnModel(Protocol):
    async def completion_probability(self, audio: Audio, transcript: str) -> float:
        """Probability in [0, 1] that the user finished their turn, judged on the turn's audio
        (16 kHz, the model may use only its tail) and its transcript so far."""
        ...


# ------------------------------------------------------------------------------------------- STT
@dataclass(frozen=True)
class STTOptions:
    prompt: str | None = None  # transcription_prompt: context text for the recogniser
    keyterms: tuple[str, ...] = ()
    language_codes: tuple[str, ...] = ()
    accurate: bool = False  # transcription_mode == max_accuracy


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float | None = None


class STT(Protocol):
    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        """Transcribe one user turn's audio so far (16 kHz). ``final=False`` asks for a cheap
        partial of the growing buffer; ``final=True`` for the turn's final text."""
        ...


# ------------------------------------------------------------------------------------------- LLM
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call produced by the model (arguments already parsed from JSON)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""  # set by the engine to the wire call_id


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tool_call_id: str | None = None  # for role == "tool"
    name: str | None = None  # tool name, for role == "tool"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class LLMRequest:
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 160


@dataclass(frozen=True)
class TextDelta:
    text: str


LLMEvent = TextDelta | ToolCallRequest


class LLMError(Exception):
    """A failed model request, reported on the wire as ``reply.error``."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        provider_code: str | None = None,
        provider_param: str | None = None,
        code: Literal["llm_error", "tts_error", "internal_error"] = "llm_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.provider_code = provider_code
        self.provider_param = provider_param
        self.code = code


class LLM(Protocol):
    def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        """Stream text deltas and tool calls. Raise ``LLMError`` on provider failure."""
        ...


# ------------------------------------------------------------------------------------------- TTS
class TTS(Protocol):
    sample_rate: int

    def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        """Audio of one sentence, in one or more chunks at ``sample_rate``. ``voice`` is a
        catalog voice id; the implementation maps it onto one of its own voices. Raise
        ``LLMError(code="tts_error")`` on failure."""
        ...


# ------------------------------------------------------------------------------------------- set
@dataclass
class ProviderSet:
    """The five providers one server uses for all its sessions."""

    name: str
    vad: VAD
    turn: TurnModel
    stt: STT
    llm: LLM
    tts: TTS
    details: dict[str, str] = field(default_factory=dict)  # what was loaded, for logs/healthz
    # Sessions this stack serves well on the machine it was measured on; 0 = no limit. Used when
    # the operator leaves ``max_sessions`` unset.
    session_budget: int = 0

    async def aclose(self) -> None:
        for provider in (self.vad, self.turn, self.stt, self.llm, self.tts):
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

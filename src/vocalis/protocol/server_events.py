"""Server events (contract §8). Each is a plain dict built here, so field names exist once.

Dicts rather than models: the engine emits ~50 ``reply.audio`` events per second per session and
the shape is fixed by the contract; ``timestamp`` is stamped by the sender at emission. The
``TypedDict`` per event costs nothing at run time (the constructors still return plain dicts) but
lets mypy check every field a constructor writes and every key a reader looks up.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

from vocalis.protocol.errors import ProtocolError


class SessionError(TypedDict):
    type: Literal["session.error"]
    code: str
    message: str
    param: str | None
    session_id: str | None
    timestamp: NotRequired[float]


class SessionUpdated(TypedDict):
    type: Literal["session.updated"]
    config: dict[str, Any]
    timestamp: NotRequired[float]


class SessionReady(TypedDict):
    type: Literal["session.ready"]
    session_id: str
    config: dict[str, Any]
    expires_at: int
    resume_token: str
    timestamp: NotRequired[float]


class SessionEnded(TypedDict):
    type: Literal["session.ended"]
    session_duration_seconds: float
    audio_duration_seconds: float | None
    reason: str
    timestamp: NotRequired[float]


class SpeechStarted(TypedDict):
    type: Literal["input.speech.started"]
    timestamp: NotRequired[float]


class SpeechStopped(TypedDict):
    type: Literal["input.speech.stopped"]
    timestamp: NotRequired[float]


class UserTranscriptDelta(TypedDict):
    type: Literal["transcript.user.delta"]
    item_id: str
    text: str
    timestamp: NotRequired[float]


class UserTranscript(TypedDict):
    type: Literal["transcript.user"]
    item_id: str
    text: str
    timestamp: NotRequired[float]


class ReplyStarted(TypedDict):
    type: Literal["reply.started"]
    reply_id: str
    item_id: str
    timestamp: NotRequired[float]


class ReplyAudio(TypedDict):
    type: Literal["reply.audio"]
    reply_id: str
    data: str
    timestamp: NotRequired[float]


class AgentTranscriptDelta(TypedDict):
    type: Literal["transcript.agent.delta"]
    reply_id: str
    item_id: str
    delta: str
    start_ms: int | None
    end_ms: int | None
    timestamp: NotRequired[float]


class AgentTranscript(TypedDict):
    type: Literal["transcript.agent"]
    reply_id: str
    item_id: str
    text: str
    interrupted: bool
    timestamp: NotRequired[float]


class ReplyDone(TypedDict):
    type: Literal["reply.done"]
    reply_id: str
    status: Literal["completed", "interrupted"]
    timestamp: NotRequired[float]


class ToolCall(TypedDict):
    type: Literal["tool.call"]
    call_id: str
    name: str
    arguments: dict[str, Any]
    args: dict[str, Any]  # the same object as ``arguments``, for older clients
    reply_id: str
    timestamp: NotRequired[float]


class ReplyError(TypedDict):
    type: Literal["reply.error"]
    reply_id: str
    code: str
    message: str
    retryable: bool
    provider_code: str | None
    provider_param: str | None
    status_code: int | None
    timestamp: NotRequired[float]


# Every member has ``type`` (the discriminant) and an optional ``timestamp``, so a sender may stamp
# any event and a reader narrows on ``event["type"]``.
ServerEvent: TypeAlias = (
    SessionError
    | SessionUpdated
    | SessionReady
    | SessionEnded
    | SpeechStarted
    | SpeechStopped
    | UserTranscriptDelta
    | UserTranscript
    | ReplyStarted
    | ReplyAudio
    | AgentTranscriptDelta
    | AgentTranscript
    | ReplyDone
    | ToolCall
    | ReplyError
)


def session_error(err: ProtocolError, session_id: str | None) -> SessionError:
    return {
        "type": "session.error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "session_id": session_id,
    }


def session_updated(config: dict[str, Any]) -> SessionUpdated:
    return {"type": "session.updated", "config": config}


def session_ready(
    session_id: str, config: dict[str, Any], expires_at: int, resume_token: str
) -> SessionReady:
    return {
        "type": "session.ready",
        "session_id": session_id,
        "config": config,
        "expires_at": expires_at,
        "resume_token": resume_token,
    }


def session_ended(
    session_duration_seconds: float, audio_duration_seconds: float | None, reason: str
) -> SessionEnded:
    return {
        "type": "session.ended",
        "session_duration_seconds": round(session_duration_seconds, 3),
        "audio_duration_seconds": (
            round(audio_duration_seconds, 3) if audio_duration_seconds is not None else None
        ),
        "reason": reason,
    }


def speech_started() -> SpeechStarted:
    return {"type": "input.speech.started"}


def speech_stopped() -> SpeechStopped:
    return {"type": "input.speech.stopped"}


def user_transcript_delta(item_id: str, text: str) -> UserTranscriptDelta:
    return {"type": "transcript.user.delta", "item_id": item_id, "text": text}


def user_transcript(item_id: str, text: str) -> UserTranscript:
    return {"type": "transcript.user", "item_id": item_id, "text": text}


def reply_started(reply_id: str, item_id: str) -> ReplyStarted:
    return {"type": "reply.started", "reply_id": reply_id, "item_id": item_id}


def reply_audio(reply_id: str, data: str) -> ReplyAudio:
    return {"type": "reply.audio", "reply_id": reply_id, "data": data}


def agent_transcript_delta(
    reply_id: str, item_id: str, delta: str, start_ms: int | None, end_ms: int | None
) -> AgentTranscriptDelta:
    return {
        "type": "transcript.agent.delta",
        "reply_id": reply_id,
        "item_id": item_id,
        "delta": delta,
        "start_ms": start_ms,
        "end_ms": end_ms,
    }


def agent_transcript(reply_id: str, item_id: str, text: str, interrupted: bool) -> AgentTranscript:
    return {
        "type": "transcript.agent",
        "reply_id": reply_id,
        "item_id": item_id,
        "text": text,
        "interrupted": interrupted,
    }


def reply_done(reply_id: str, status: Literal["completed", "interrupted"]) -> ReplyDone:
    return {"type": "reply.done", "reply_id": reply_id, "status": status}


def tool_call(call_id: str, name: str, arguments: dict[str, Any], reply_id: str) -> ToolCall:
    return {
        "type": "tool.call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "args": arguments,
        "reply_id": reply_id,
    }


def reply_error(
    reply_id: str,
    code: str,
    message: str,
    *,
    retryable: bool,
    provider_code: str | None = None,
    provider_param: str | None = None,
    status_code: int | None = None,
) -> ReplyError:
    return {
        "type": "reply.error",
        "reply_id": reply_id,
        "code": code,
        "message": message,
        "retryable": retryable,
        "provider_code": provider_code,
        "provider_param": provider_param,
        "status_code": status_code,
    }

"""Server events (contract §8). Each is a plain dict built here, so field names exist once.

Dicts rather than models: the engine emits ~50 ``reply.audio`` events per second per session and
the shape is fixed by the contract; ``timestamp`` is stamped by the sender at emission.
"""

from __future__ import annotations

from typing import Any, Literal

from vocalis.protocol.errors import ProtocolError

ServerEvent = dict[str, Any]


def session_error(err: ProtocolError, session_id: str | None) -> ServerEvent:
    return {
        "type": "session.error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "session_id": session_id,
    }


def session_updated(config: dict[str, Any]) -> ServerEvent:
    return {"type": "session.updated", "config": config}


def session_ready(
    session_id: str, config: dict[str, Any], expires_at: int, resume_token: str
) -> ServerEvent:
    return {
        "type": "session.ready",
        "session_id": session_id,
        "config": config,
        "expires_at": expires_at,
        "resume_token": resume_token,
    }


def session_ended(
    session_duration_seconds: float, audio_duration_seconds: float | None, reason: str
) -> ServerEvent:
    return {
        "type": "session.ended",
        "session_duration_seconds": round(session_duration_seconds, 3),
        "audio_duration_seconds": (
            round(audio_duration_seconds, 3) if audio_duration_seconds is not None else None
        ),
        "reason": reason,
    }


def speech_started() -> ServerEvent:
    return {"type": "input.speech.started"}


def speech_stopped() -> ServerEvent:
    return {"type": "input.speech.stopped"}


def user_transcript_delta(item_id: str, text: str) -> ServerEvent:
    return {"type": "transcript.user.delta", "item_id": item_id, "text": text}


def user_transcript(item_id: str, text: str) -> ServerEvent:
    return {"type": "transcript.user", "item_id": item_id, "text": text}


def reply_started(reply_id: str, item_id: str) -> ServerEvent:
    return {"type": "reply.started", "reply_id": reply_id, "item_id": item_id}


def reply_audio(reply_id: str, data: str) -> ServerEvent:
    return {"type": "reply.audio", "reply_id": reply_id, "data": data}


def agent_transcript_delta(
    reply_id: str, item_id: str, delta: str, start_ms: int | None, end_ms: int | None
) -> ServerEvent:
    return {
        "type": "transcript.agent.delta",
        "reply_id": reply_id,
        "item_id": item_id,
        "delta": delta,
        "start_ms": start_ms,
        "end_ms": end_ms,
    }


def agent_transcript(reply_id: str, item_id: str, text: str, interrupted: bool) -> ServerEvent:
    return {
        "type": "transcript.agent",
        "reply_id": reply_id,
        "item_id": item_id,
        "text": text,
        "interrupted": interrupted,
    }


def reply_done(reply_id: str, status: Literal["completed", "interrupted"]) -> ServerEvent:
    return {"type": "reply.done", "reply_id": reply_id, "status": status}


def tool_call(call_id: str, name: str, arguments: dict[str, Any], reply_id: str) -> ServerEvent:
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
) -> ServerEvent:
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

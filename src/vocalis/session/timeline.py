"""The timeline artifact of a session (§17.4): one turn per reply, with per-stage timings.

``timings`` is a Vocalis addition to each turn: wall-clock offsets in ms from the end of the user's
speech (the last speech frame) to the turn decision, the final transcript, the model's first
token, the first piece of text handed to the voice, the first synthesised audio and the first
audio chunk sent, so an operator can see where a slow turn spent its time (the first piece
tells the model's share of a late first sound from the synthesiser's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vocalis.session.reply import Reply

PUBLIC_TO_TIMELINE_REASON = {
    "client_end": "user_initiated",
    "max_duration": "max_duration",
    "idle_timeout": "idle_timeout",
    "disconnected": "participant_disconnected",
    "error": "error",
    "server_shutdown": "server_shutdown",
}


@dataclass
class ReplyRecord:
    """What the session remembers of a started reply."""

    reply: Reply
    started_at: float  # wall seconds of reply.started
    text: str = ""  # what entered the history
    followup_queued: bool = False
    status: Literal["completed", "interrupted"] | None = None
    interrupted_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class SessionFacts:
    """What the timeline says of the session itself."""

    session_id: str
    created_wall: float
    created_mono: float
    close_reason: str | None
    ended_wall: float | None


def _ms(wall: float | None) -> int | None:
    return int(wall * 1000) if wall is not None else None


def build_timeline(
    session: SessionFacts, records: list[ReplyRecord], config_changes: list[dict[str, Any]]
) -> dict[str, Any]:
    ended = None
    if session.close_reason is not None and session.ended_wall is not None:
        ended = {
            "reason": PUBLIC_TO_TIMELINE_REASON.get(session.close_reason, session.close_reason),
            "public_reason": session.close_reason,
            "duration_seconds": round(session.ended_wall - session.created_wall, 3),
        }
    to_wall = session.created_wall - session.created_mono
    return {
        "session_id": session.session_id,
        "started_at_unix_ms": _ms(session.created_wall),
        "turns": [turn_record(r, to_wall) for r in records],
        "config_changes": list(config_changes),
        "ended": ended,
    }


def turn_record(record: ReplyRecord, mono_to_wall: float) -> dict[str, Any]:
    reply = record.reply
    plan = reply.plan
    t = reply.timings
    ttfa = None
    if t.first_audio_sent is not None:
        ttfa = int((t.first_audio_sent - plan.queued_at) * 1000)
    out: dict[str, Any] = {
        "turn_id": reply.reply_id,
        "item_id": reply.item_id,
        "status": record.status,
        "trigger": plan.trigger,
        "requested_instructions": plan.instructions,
        "user_transcript": plan.user_text,
        "user_speech_started_at_ms": _ms(plan.user_started_at),
        "user_speech_ended_at_ms": _ms(plan.user_ended_at),
        "user_confidence": plan.user_confidence,
        "agent_text": record.text,
        "agent_reply_started_at_ms": _ms(record.started_at),
        "agent_reply_ended_at_ms": _ms(record.ended_at),
        "interrupted_at_ms": _ms(record.interrupted_at),
        "time_to_first_audio_ms": ttfa,
    }
    origin = plan.user_speech_end_at
    if origin is not None:

        def since(mono: float | None) -> int | None:
            return None if mono is None else int((mono + mono_to_wall - origin) * 1000)

        out["timings"] = {
            "turn_decision_ms": int(((plan.user_ended_at or origin) - origin) * 1000),
            "stt_final_ms": (
                int((plan.stt_final_at - origin) * 1000) if plan.stt_final_at else None
            ),
            "llm_first_token_ms": since(t.first_llm_token),
            "first_piece_ms": since(t.first_piece),
            "tts_first_audio_ms": since(t.first_tts_audio),
            "first_audio_sent_ms": since(t.first_audio_sent),
        }
    if reply.calls:
        out["tool_calls"] = [
            {
                "call_id": c.call_id,
                "name": c.name,
                "arguments": c.arguments,
                "result": c.result,
                "dispatched_at_ms": _ms(c.dispatched_at),
                "result_received_at_ms": _ms(c.resolved_at),
                "duration_ms": (
                    int((c.resolved_at - c.dispatched_at) * 1000) if c.resolved_at else None
                ),
                "is_error": c.is_error,
                "timed_out": c.status == "timed_out",
                "parallel_call_id": c.item_id,
            }
            for c in reply.calls
        ]
    return out

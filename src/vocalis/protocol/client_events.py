"""Client events (contract §7) and the parser that turns one text frame into one of them.

``parse_client_message`` applies the checks of §5 in order and raises the exact
``invalid_format`` errors of §16.1; value checks happen later, in the engine.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vocalis.protocol import errors


class _ClientEvent(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class SessionUpdate(_ClientEvent):
    type: Literal["session.update"] = "session.update"
    session: dict[str, Any] | None = None


class SessionResume(_ClientEvent):
    type: Literal["session.resume"] = "session.resume"
    session_id: str
    resume_token: str | None = None


class InputAudio(_ClientEvent):
    type: Literal["input.audio"] = "input.audio"
    audio: str


class ToolResult(_ClientEvent):
    type: Literal["tool.result"] = "tool.result"
    call_id: str
    result: Any
    is_error: bool | None = None


class ReplyCreate(_ClientEvent):
    type: Literal["reply.create"] = "reply.create"
    instructions: str | None = None


class ConversationMessage(_ClientEvent):
    type: Literal["conversation.message"] = "conversation.message"
    role: Literal["user", "system"]
    content: str


class ReplyCancel(_ClientEvent):
    type: Literal["reply.cancel"] = "reply.cancel"
    reply_id: str | None = None


class SessionEnd(_ClientEvent):
    type: Literal["session.end"] = "session.end"


ClientEvent = (
    SessionUpdate
    | SessionResume
    | InputAudio
    | ToolResult
    | ReplyCreate
    | ConversationMessage
    | ReplyCancel
    | SessionEnd
)

CLIENT_EVENT_TYPES: dict[str, type[_ClientEvent]] = {
    "session.update": SessionUpdate,
    "session.resume": SessionResume,
    "input.audio": InputAudio,
    "tool.result": ToolResult,
    "reply.create": ReplyCreate,
    "conversation.message": ConversationMessage,
    "reply.cancel": ReplyCancel,
    "session.end": SessionEnd,
}


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_unicode(data: Any) -> bool:
    """False when ``\\uD800``-style escapes left a lone surrogate: such text cannot be encoded
    as UTF-8, so echoing it (a prompt, a transcript) would break the socket's writer."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def parse_client_message(text: str) -> ClientEvent:
    """Parse one text frame; raise ``ProtocolError`` (``invalid_format``) on bad input."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise errors.invalid_json() from None
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(data):
        raise errors.invalid_json()
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise errors.invalid_message()
    type_ = data["type"]
    model = CLIENT_EVENT_TYPES.get(type_)
    if model is None:
        raise errors.unknown_type(type_)
    if type_ == "tool.result" and "result" not in data:
        raise errors.invalid_fields(type_)
    try:
        event = model.model_validate(data)
    except ValidationError:
        raise errors.invalid_fields(type_) from None
    return event  # type: ignore[return-value]

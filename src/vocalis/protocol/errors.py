"""The ``session.error`` catalogue of contract §16.1: exact codes, messages and close codes.

Every error the engine or the edge reports is built here, so a message string exists once.
A ``ProtocolError`` carries the close code the socket gets after it (``None`` = stays open).
"""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "unauthorized",
    "invalid_format",
    "invalid_audio",
    "audio_rate_violation",
    "invalid_value",
    "agent_not_found",
    "invalid_config",
    "agent_id_not_first",
    "immutable_field",
    "invalid_webhook",
    "session_not_found",
    "session_forbidden",
    "at_capacity",
    "internal_error",
]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


class ProtocolError(Exception):
    """An error for the client: ``session.error`` with these fields, then maybe a close."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.param = param
        self.close_code = close_code

    def fatal(self, close_code: int = CLOSE_POLICY) -> ProtocolError:
        """The same error, closing the socket (errors of a first ``session.update``)."""
        return ProtocolError(self.code, self.message, param=self.param, close_code=close_code)

    def __repr__(self) -> str:
        return f"ProtocolError({self.code!r}, {self.message!r}, param={self.param!r})"


def unauthorized() -> ProtocolError:
    return ProtocolError("unauthorized", "Authentication failed", close_code=CLOSE_POLICY)


def invalid_json() -> ProtocolError:
    return ProtocolError("invalid_format", "Invalid JSON format.")


def invalid_message() -> ProtocolError:
    return ProtocolError("invalid_format", "Invalid message format")


def unknown_type(type_: str) -> ProtocolError:
    return ProtocolError("invalid_format", f"Unknown message type: {type_}")


def invalid_fields(type_: str) -> ProtocolError:
    return ProtocolError("invalid_format", f"Invalid message format for type '{type_}'")


def not_allowed_before_ready(type_: str) -> ProtocolError:
    return ProtocolError(
        "invalid_format",
        f"Message type '{type_}' is not allowed before session.ready; "
        "send session.update or session.resume first",
    )


def first_message_timeout() -> ProtocolError:
    return ProtocolError(
        "invalid_format",
        "Timed out waiting for session.update or session.resume",
        close_code=CLOSE_POLICY,
    )


def resume_not_first() -> ProtocolError:
    return ProtocolError("invalid_format", "session.resume is only allowed as the first message")


def binary_frame() -> ProtocolError:
    return ProtocolError("invalid_format", "Binary frames are not supported")


def message_too_large() -> ProtocolError:
    return ProtocolError("invalid_format", "Message too large")


def invalid_audio() -> ProtocolError:
    return ProtocolError("invalid_audio", "Invalid audio data")


def audio_rate_violation() -> ProtocolError:
    return ProtocolError(
        "audio_rate_violation", "Audio sent faster than real time; excess audio was dropped"
    )


def invalid_value(param: str, constraint: str) -> ProtocolError:
    """The generic value error of §5: ``'<param>' must be <constraint>``."""
    return ProtocolError("invalid_value", f"'{param}' must be {constraint}", param=param)


def invalid_voice(voice: str, catalog_ids: list[str], param: str = "output.voice") -> ProtocolError:
    ids = ", ".join(sorted(catalog_ids))
    return ProtocolError(
        "invalid_value", f"Invalid voice '{voice}'. Must be one of: {ids}", param=param
    )


def agent_id_exclusive() -> ProtocolError:
    return ProtocolError(
        "invalid_value",
        "agent_id is mutually exclusive with other session fields",
        param="agent_id",
    )


def inline_llm() -> ProtocolError:
    return ProtocolError(
        "invalid_value",
        "BYO LLM config is not allowed on session.update; "
        "define it on a stored agent via POST /v1/agents",
        param="llm",
    )


def inline_http_tool(index: int) -> ProtocolError:
    return ProtocolError(
        "invalid_value",
        "HTTP tools are only supported on stored agents; define them via POST /v1/agents",
        param=f"tools[{index}].http",
    )


def unknown_call_id(call_id: str) -> ProtocolError:
    return ProtocolError("invalid_value", f"Unknown call_id '{call_id}'", param="call_id")


def unknown_reply_id(reply_id: str) -> ProtocolError:
    return ProtocolError("invalid_value", f"Unknown reply_id '{reply_id}'", param="reply_id")


def too_many_queued() -> ProtocolError:
    return ProtocolError("invalid_value", "Too many queued replies")


def agent_not_found() -> ProtocolError:
    return ProtocolError(
        "agent_not_found", "Agent not found", param="agent_id", close_code=CLOSE_POLICY
    )


def invalid_agent_config(detail: str) -> ProtocolError:
    return ProtocolError(
        "invalid_config",
        f"Agent configuration is invalid: {detail}",
        param="agent_id",
        close_code=CLOSE_POLICY,
    )


def agent_id_not_first() -> ProtocolError:
    return ProtocolError(
        "agent_id_not_first",
        "agent_id can only be set on the first session.update",
        param="agent_id",
    )


def immutable_field(field: str) -> ProtocolError:
    return ProtocolError(
        "immutable_field",
        f"'{field}' cannot be changed after the first session.update",
        param=field,
    )


def invalid_webhook(field: str, constraint: str) -> ProtocolError:
    param = f"webhook.{field}" if field else "webhook"
    return ProtocolError("invalid_webhook", f"'{param}' must be {constraint}", param=param)


def session_not_found() -> ProtocolError:
    return ProtocolError(
        "session_not_found",
        "Session not found or grace window has expired",
        param="session_id",
        close_code=CLOSE_POLICY,
    )


def session_forbidden() -> ProtocolError:
    return ProtocolError(
        "session_forbidden",
        "Credential is not allowed to resume this session",
        param="session_id",
        close_code=CLOSE_POLICY,
    )


def at_capacity() -> ProtocolError:
    return ProtocolError(
        "at_capacity", "Server is at capacity; try again later", close_code=CLOSE_TRY_AGAIN
    )


def internal_error(*, fatal: bool = False) -> ProtocolError:
    return ProtocolError(
        "internal_error",
        "Internal server error",
        close_code=CLOSE_INTERNAL if fatal else None,
    )

"""Readable explanations of every ``session.error`` code (contract §16.1) for client users."""

from __future__ import annotations

from typing import Any, Final

# Codes after which the server closes the socket whatever the situation (§16.1).
TERMINAL_CODES: Final = frozenset(
    {
        "unauthorized",
        "agent_not_found",
        "invalid_config",
        "session_not_found",
        "session_forbidden",
        "at_capacity",
        "concurrency_exceeded",
        "session_expired",
    }
)
RETRYABLE_CODES: Final = frozenset({"at_capacity", "internal_error"})

HINTS: Final[dict[str, str]] = {
    "unauthorized": (
        "The server rejected the credential: pass a valid API key (--api-key), or a fresh "
        "temporary token (--token; tokens are single-use and expire unredeemed)"
    ),
    "invalid_format": "The server could not read a message from this client",
    "invalid_audio": "Audio sent by this client was not valid base64",
    "audio_rate_violation": ("Audio was sent faster than real time; the server dropped the excess"),
    "invalid_value": "A session setting or message field has an invalid value",
    "agent_not_found": "No stored agent has this id (list them with GET /v1/agents)",
    "invalid_config": "The stored agent's configuration is no longer valid; fix it with PUT",
    "agent_id_not_first": "agent_id can only be given in the first session.update",
    "immutable_field": "greeting, output.voice and output.format cannot change mid-session",
    "invalid_webhook": "The webhook configuration is invalid",
    "session_not_found": (
        "The session cannot be resumed: it ended or its resume window expired; start a new session"
    ),
    "session_forbidden": "This credential may not resume that session",
    "at_capacity": "The server is at capacity; try again later",
    "internal_error": "The server hit an internal error",
    "concurrency_exceeded": "Too many concurrent sessions for this account",
    "session_expired": "The session has expired",
}


# The server answers a missing and a rejected credential alike (§3.4); the client knows which.
NO_CREDENTIAL_HINT: Final = (
    "No credential was sent and the server requires one: pass an API key (--api-key, or set "
    "VOCALIS_API_KEY) or a temporary token (--token)"
)


def describe_error(event: dict[str, Any], *, credential_sent: bool = True) -> str:
    """One sentence for a ``session.error`` event: what it means, then what the server said.

    ``credential_sent``: whether the connection presented a credential; an ``unauthorized``
    without one is explained as a missing credential rather than a rejected one.
    """
    code = str(event.get("code") or "unknown")
    message = str(event.get("message") or "")
    param = event.get("param")
    hint = HINTS.get(code, f"The server reported error '{code}'")
    if code == "unauthorized" and not credential_sent:
        hint = NO_CREDENTIAL_HINT
    where = f" (field {param})" if param else ""
    said = f": {message}" if message else ""
    return f"{hint}{where}{said} [{code}]"


class SessionError(Exception):
    """The server ended or refused the session with a ``session.error``."""

    def __init__(self, event: dict[str, Any], *, credential_sent: bool = True) -> None:
        super().__init__(describe_error(event, credential_sent=credential_sent))
        self.credential_sent = credential_sent
        self.event = event
        self.code: str = str(event.get("code") or "unknown")
        self.message: str = str(event.get("message") or "")
        self.param: str | None = event.get("param")

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class ConnectionLost(Exception):
    """The connection dropped and the session could not be resumed."""

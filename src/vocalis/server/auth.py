"""Credentials (§3): where a client presents one and what kind it is."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from vocalis.server.tokens import TokenStore
from vocalis.session.hooks import Credential
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings


def presented_credential(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <c>`` (prefix case-insensitive), bare ``Authorization: <c>``, or
    ``?token=<c>``; the header wins when both are present."""
    auth = headers.get("authorization")
    if auth is not None and auth.strip():
        value = auth.strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        return value or None
    token = query.get("token")
    return token or None


def is_api_key(value: str | None, settings: Settings) -> bool:
    if not value:
        return False
    encoded = value.encode()
    return any(hmac.compare_digest(encoded, key.encode()) for key in settings.api_keys)


def websocket_credential(
    value: str | None, settings: Settings, tokens: TokenStore, manager: SessionManager
) -> Credential | None:
    """Classify a WebSocket credential; ``None`` means ``unauthorized`` (§3.4).

    A temporary token is redeemed here, once, even if the session then fails to start.
    """
    if value:
        if is_api_key(value, settings):
            return Credential("api_key")
        cap = tokens.redeem(value)
        if cap is not None:
            return Credential("temporary", max_session_duration_seconds=cap)
        session_id = manager.session_for_resume_token(value)
        if session_id is not None:
            return Credential("resume", session_id=session_id, token=value)
    if settings.open_mode:
        return Credential("open")
    return None

"""Credentials (§3): where a client presents one, what kind it is, and the one API-key check.

Both the WebSocket route and the REST routes decide "is this an API key?" with :func:`is_api_key`,
so the two paths cannot drift apart in what they accept or in how long a wrong guess takes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from vocalis.server.tokens import TokenStore
from vocalis.session.hooks import Credential
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings


def header_credential(header: str | None) -> str | None:
    """The credential in an ``Authorization`` header: ``Bearer <c>`` (prefix case-insensitive) or
    a bare ``<c>``; ``None`` when the header is absent or blank (REST: "Missing authorization")."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def presented_credential(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The WebSocket credential (§3.1): the ``Authorization`` header, else ``?token=<c>``; the
    header wins when both are present."""
    header = headers.get("authorization")
    if header is not None and header.strip():
        return header_credential(header)
    token = query.get("token")
    return token or None


def is_api_key(value: str | None, keys: Iterable[str]) -> bool:
    """Whether ``value`` is one of the configured API ``keys``, in constant time.

    Every key is compared, with no early exit, so the time taken does not tell which key (if any)
    matched. Both sides are hashed first: :func:`hmac.compare_digest` is constant-time only for
    equal lengths, and SHA-256 digests always are, so a key's length does not leak either.
    """
    if not value:
        return False
    presented = hashlib.sha256(value.encode()).digest()
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented, hashlib.sha256(key.encode()).digest())
    return found


async def websocket_credential(
    value: str | None, settings: Settings, tokens: TokenStore, manager: SessionManager
) -> Credential | None:
    """Classify a WebSocket credential; ``None`` means ``unauthorized`` (§3.4).

    A temporary token is redeemed here, once, even if the session then fails to start.
    """
    if value:
        if is_api_key(value, settings.api_keys):
            return Credential("api_key")
        cap = await tokens.take(value)
        if cap is not None:
            return Credential("temporary", max_session_duration_seconds=cap)
        session_id = await manager.lookup_resume_token(value)
        if session_id is not None:
            return Credential("resume", session_id=session_id, token=value)
    if settings.open_mode:
        return Credential("open")
    return None

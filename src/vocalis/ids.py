"""Identifier formats of contract §1: a prefix plus 32 lowercase hex digits."""

from __future__ import annotations

import secrets
import uuid


def new_id(prefix: str) -> str:
    """Return ``<prefix>_<uuid4 hex>``, e.g. ``sess_59a244f26fe641f18eb9eb9d183ba1fb``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def session_id() -> str:
    return new_id("sess")


def reply_id() -> str:
    return new_id("resp")


def item_id() -> str:
    return new_id("msg")


def call_id() -> str:
    return new_id("call")


def agent_id() -> str:
    return new_id("agent")


def tool_id() -> str:
    return new_id("tool")


def request_id() -> str:
    return new_id("req")


def opaque_token(nbytes: int = 32) -> str:
    """An opaque URL-safe token (temporary and resume tokens); clients never parse it."""
    return secrets.token_urlsafe(nbytes)

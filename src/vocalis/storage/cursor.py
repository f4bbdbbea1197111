"""Opaque list cursors (§17.3, §17.4): the (created_us, id) of the last item shown."""

from __future__ import annotations

import base64
import binascii
import json

from vocalis.storage.errors import InvalidInput


def encode(created_us: int, item_id: str) -> str:
    raw = json.dumps([created_us, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[int, str] | None:
    """The position after which the next page starts; ``None`` for the first page."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_us, item_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInput.one("cursor", "Invalid cursor") from None
    if not isinstance(created_us, int) or not isinstance(item_id, str):
        raise InvalidInput.one("cursor", "Invalid cursor")
    return created_us, item_id

"""Opaque list cursors (§17.3, §17.4): the (created_us, id) of the last item shown."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sqlalchemy import Select, Table, and_, or_

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


def newest_first(query: Select[Any], table: Table, cursor: str | None, limit: int) -> Select[Any]:
    """``query`` as one page, newest first, after ``cursor``; one extra row tells ``has_more``."""
    after = decode(cursor)
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(
                table.c.created_us < created,
                and_(table.c.created_us == created, table.c.id < last_id),
            )
        )
    return query.order_by(table.c.created_us.desc(), table.c.id.desc()).limit(limit + 1)

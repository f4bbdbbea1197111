"""Timestamps as stored (integer Unix microseconds) and as shown (ISO 8601 UTC, §17.1).

Integers keep ordering and cursors exact on every backend; floats would round differently.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1_000


def seconds_to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def iso(us: int) -> str:
    """``2026-09-24T00:52:06.150269Z``: microseconds always present."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_from_seconds(seconds: float) -> str:
    return iso(seconds_to_us(seconds))

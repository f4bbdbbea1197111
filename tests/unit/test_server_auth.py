"""The one API-key check shared by the WebSocket and REST paths, and credential parsing (§3.1)."""

from __future__ import annotations

import hmac

import pytest

from vocalis.server import auth

KEYS = ["key-one", "key-two", "key-three"]


@pytest.mark.parametrize("key", KEYS)
def test_every_configured_key_is_accepted(key: str) -> None:
    assert auth.is_api_key(key, KEYS)


@pytest.mark.parametrize("value", [None, "", "key", "key-one ", "KEY-ONE", "key-one-and-more"])
def test_anything_else_is_not_a_key(value: str | None) -> None:
    assert not auth.is_api_key(value, KEYS)


def test_no_keys_configured_accepts_nothing() -> None:
    assert not auth.is_api_key("key-one", [])


@pytest.mark.parametrize("value", ["key-one", "key-three", "wrong", "much-longer-than-any-key"])
def test_every_key_is_compared_with_equal_length_inputs(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early exit on a match, and no length difference for compare_digest to leak."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    auth.is_api_key(value, KEYS)
    assert len(calls) == len(KEYS)
    assert all(a == b for a, b in calls)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        ("abc", "abc"),
        ("Bearer ", "Bearer"),  # a lone scheme is a (wrong) credential: REST says Unauthorized
    ],
)
def test_header_credential(header: str | None, expected: str | None) -> None:
    assert auth.header_credential(header) == expected


def test_websocket_credential_prefers_the_header_over_the_query() -> None:
    assert auth.presented_credential({"authorization": "Bearer h"}, {"token": "q"}) == "h"
    assert auth.presented_credential({}, {"token": "q"}) == "q"
    assert auth.presented_credential({"authorization": " "}, {"token": "q"}) == "q"
    assert auth.presented_credential({}, {}) is None

"""Secrets at rest and URL signatures."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from vocalis.storage.crypto import KEY_FILE_NAME, SecretBox, fernet_key, load_or_create_key


def test_key_file_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = load_or_create_key(None, tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(None, tmp_path / "data") == first
    Fernet(first)  # a valid key


def test_configured_key_wins_and_passphrases_are_derived(tmp_path: Path) -> None:
    real = Fernet.generate_key()
    assert load_or_create_key(real.decode(), tmp_path) == real
    assert not (tmp_path / KEY_FILE_NAME).exists()
    derived = fernet_key("correct horse battery staple")
    assert derived == fernet_key("correct horse battery staple")
    assert derived != fernet_key("another passphrase")
    Fernet(derived)


def test_seal_and_open_round_trip_and_wrong_key_fails() -> None:
    box = SecretBox(fernet_key("a"))
    token = box.seal({"headers": {"tool_1": {"Authorization": "Bearer s3cret"}}})
    assert "s3cret" not in token
    assert box.open(token) == {"headers": {"tool_1": {"Authorization": "Bearer s3cret"}}}
    with pytest.raises(RuntimeError, match="secret_key differs"):
        SecretBox(fernet_key("b")).open(token)


def test_signatures_bind_the_message_and_the_key() -> None:
    box = SecretBox(fernet_key("a"))
    sig = box.sign("sess_1:timeline:100")
    assert box.verify("sess_1:timeline:100", sig)
    assert not box.verify("sess_1:audio:100", sig)
    assert not box.verify("sess_1:timeline:101", sig)
    assert not SecretBox(fernet_key("b")).verify("sess_1:timeline:100", sig)
    assert not box.verify("sess_1:timeline:100", "not-hex")

"""Secrets at rest and signed artifact URLs, both keyed by one server secret.

Stored-agent secrets (HTTP tool header values, custom LLM API keys) are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package). The key comes from the
``secret_key`` setting; without one, a key is generated once into ``data_dir/secret.key`` (mode
0600) so that a restart can still read what it wrote. Losing that file makes stored secrets
unreadable, so operators should back it up or set ``secret_key``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


def fernet_key(secret: str) -> bytes:
    """A Fernet key from the setting: used as is when it already is one, else derived by SHA-256."""
    raw = secret.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def load_or_create_key(secret_key: str | None, data_dir: Path) -> bytes:
    if secret_key:
        return fernet_key(secret_key)
    path = data_dir / KEY_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return fernet_key(path.read_text())
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    log.warning(
        "No secret_key configured: generated %s (mode 0600). Stored agent secrets are encrypted "
        "with it; keep it (or set VOCALIS_SECRET_KEY) or they become unreadable.",
        path,
    )
    return key


class SecretBox:
    """Encrypts a JSON value into an opaque token and back."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._signing_key = hmac.new(key, b"vocalis artifact url", hashlib.sha256).digest()

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()

    def open(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise RuntimeError(
                "stored secrets cannot be decrypted: secret_key differs from the one used to write"
            ) from exc

    def sign(self, message: str) -> str:
        return hmac.new(self._signing_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

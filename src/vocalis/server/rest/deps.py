"""What the routes read from the app: ``app.state.vocalis`` (settings, tokens, storage, manager)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
from typing import Annotated, Any

from fastapi import Depends, Request

from vocalis.server.rest import errors
from vocalis.session.hooks import SessionRecord
from vocalis.settings import Settings
from vocalis.storage import Storage

MISSING: Any = object()  # an empty request body


def app_state(request: Request) -> Any:
    return request.app.state.vocalis


def settings_of(request: Request) -> Settings:
    settings: Settings = app_state(request).settings
    return settings


def storage_of(request: Request) -> Storage:
    storage: Storage = app_state(request).storage
    return storage


STARTUP_WAIT_SECONDS = 10.0


async def require_storage(request: Request) -> None:
    """Wait briefly while the app is still opening storage; then 503 (retryable)."""
    state = app_state(request)
    if getattr(state, "storage", None) is not None:
        return
    ready = getattr(state, "ready", None)
    if isinstance(ready, asyncio.Event):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), STARTUP_WAIT_SECONDS)
    if getattr(state, "storage", None) is None:
        raise errors.ApiError(503, "internal_error", "Server is starting; try again later")


async def live_records(request: Request) -> list[SessionRecord]:
    """Sessions the manager holds (ACTIVE or DETACHED); none when there is no manager yet."""
    manager = getattr(app_state(request), "manager", None)
    if manager is None:
        return []
    records = manager.live_records()
    if inspect.isawaitable(records):
        records = await records
    return list(records)


def is_authenticated(request: Request) -> bool:
    """An API key (§17.1) or open mode; temporary and resume tokens are never keys."""
    settings = settings_of(request)
    if settings.open_mode:
        return True
    credential = _credential(request)
    return credential is not None and _known_key(credential, settings.api_keys)


async def require_api_key(request: Request) -> None:
    settings = settings_of(request)
    if settings.open_mode:
        return
    credential = _credential(request)
    if credential is None:
        raise errors.missing_authorization()
    if not _known_key(credential, settings.api_keys):
        raise errors.unauthorized()


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header or not header.strip():
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def _known_key(credential: str, keys: list[str]) -> bool:
    found = False
    for key in keys:  # compare with every key: no early exit to time
        found |= hmac.compare_digest(credential.encode(), key.encode())
    return found


async def json_body(request: Request) -> Any:
    """The JSON body, read within ``rest_max_body_bytes`` before parsing; ``MISSING`` if empty."""
    limit = settings_of(request).rest_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise errors.payload_too_large()
        except ValueError:
            raise errors.invalid_json() from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise errors.payload_too_large()
    if not body.strip():
        return MISSING
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_json() from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


JsonBody = Annotated[Any, Depends(json_body)]

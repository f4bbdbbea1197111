"""What the routes read from the app (through :func:`~vocalis.server.state.app_state`) and the
request: settings, storage, live sessions, the API-key check and the JSON body."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import Depends, Request

from vocalis.server.auth import header_credential, is_api_key
from vocalis.server.rest import errors
from vocalis.server.state import app_state
from vocalis.session.hooks import SessionRecord
from vocalis.settings import Settings
from vocalis.storage import Storage

MISSING: Any = object()  # an empty request body


def settings_of(request: Request) -> Settings:
    return app_state(request.app).settings


def storage_of(request: Request) -> Storage:
    """The open storage; routes that use it depend on :func:`require_storage`, which waits."""
    storage = app_state(request.app).storage
    if storage is None:
        raise _starting()
    return storage


STARTUP_WAIT_SECONDS = 10.0


async def require_storage(request: Request) -> None:
    """Wait briefly while the app is still opening storage; then 503 (retryable)."""
    state = app_state(request.app)
    if state.storage is not None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.ready.wait(), STARTUP_WAIT_SECONDS)
    if state.storage is None:
        raise _starting()


def _starting() -> errors.ApiError:
    return errors.ApiError(503, "internal_error", "Server is starting; try again later")


def live_records(request: Request) -> list[SessionRecord]:
    """Sessions the manager holds (ACTIVE or DETACHED); none when there is no manager yet."""
    manager = app_state(request.app).manager
    return [] if manager is None else list(manager.live_records())


def is_authenticated(request: Request) -> bool:
    """An API key (§17.1) or open mode; temporary and resume tokens are never keys."""
    settings = settings_of(request)
    if settings.open_mode:
        return True
    return is_api_key(header_credential(request.headers.get("authorization")), settings.api_keys)


async def require_api_key(request: Request) -> None:
    """§17.1: no credential is ``Missing authorization header``, a wrong one ``Unauthorized``."""
    settings = settings_of(request)
    if settings.open_mode:
        return
    credential = header_credential(request.headers.get("authorization"))
    if credential is None:
        raise errors.missing_authorization()
    if not is_api_key(credential, settings.api_keys):
        raise errors.unauthorized()


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
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting beyond the parser's depth
        raise errors.invalid_json() from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


JsonBody = Annotated[Any, Depends(json_body)]

"""Webhook subscriptions and per-session deliveries (§19).

Subscriptions are account-level: every session (or, with ``agent_id``, every session of one
stored agent) fires the events they list. Secrets are write-only; rotating one (``PATCH`` with a
new ``secret``) increments ``secret_version``. Validation and storage live in
``vocalis.storage.webhooks``; a URL on a host outside ``http_tool_allowed_hosts`` is refused
here with 422, before anything could be sent to it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from vocalis.server.rest import errors
from vocalis.server.rest.deps import (
    MISSING,
    JsonBody,
    live_records,
    require_api_key,
    require_storage,
    storage_of,
)
from vocalis.storage.errors import InvalidInput
from vocalis.storage.sessions import valid_session_id
from vocalis.storage.timestamps import now_us

router = APIRouter(
    tags=["webhooks"], dependencies=[Depends(require_api_key), Depends(require_storage)]
)


def _required(body: Any) -> Any:
    if body is MISSING:
        raise InvalidInput.one("body", "Field required")
    return body


def _subscription_not_found() -> errors.ApiError:
    return errors.ApiError(404, "not_found", "Not found", param="subscription_id")


@router.post("/v1/webhook-subscriptions", status_code=201)
async def create_subscription(request: Request, body: JsonBody) -> JSONResponse:
    record = await storage_of(request).webhooks.create(_required(body), now_us())
    return JSONResponse(record, status_code=201)


@router.get("/v1/webhook-subscriptions")
async def list_subscriptions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    include_disabled: bool = False,
) -> dict[str, Any]:
    page = await storage_of(request).webhooks.page(limit, cursor, include_disabled)
    return {
        "subscriptions": page.items,
        "has_more": bool(page.next_cursor),
        "response_metadata": {"next_cursor": page.next_cursor},
    }


@router.get("/v1/webhook-subscriptions/{subscription_id}")
async def get_subscription(request: Request, subscription_id: str) -> dict[str, Any]:
    record = await storage_of(request).webhooks.get(subscription_id)
    if record is None:
        raise _subscription_not_found()
    return record


@router.patch("/v1/webhook-subscriptions/{subscription_id}")
async def update_subscription(
    request: Request, subscription_id: str, body: JsonBody
) -> dict[str, Any]:
    store = storage_of(request).webhooks
    if await store.get(subscription_id) is None:
        raise _subscription_not_found()  # 404 before judging the body
    record = await store.update(subscription_id, _required(body), now_us())
    if record is None:
        raise _subscription_not_found()
    return record


@router.delete("/v1/webhook-subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    if not await storage_of(request).webhooks.delete(subscription_id):
        raise _subscription_not_found()
    return Response(status_code=204)


async def _known_session(request: Request, session_id: str) -> None:
    if not valid_session_id(session_id):
        raise errors.session_not_found()
    if any(r.session_id == session_id for r in live_records(request)):
        return
    if await storage_of(request).sessions.get(session_id) is None:
        raise errors.session_not_found()


@router.get("/v1/sessions/{session_id}/webhook-deliveries")
async def list_deliveries(
    request: Request,
    session_id: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    await _known_session(request, session_id)
    page = await storage_of(request).webhooks.session_deliveries(session_id, limit, cursor)
    return {
        "deliveries": page.items,
        "has_more": bool(page.next_cursor),
        "response_metadata": {"next_cursor": page.next_cursor},
    }


@router.get("/v1/sessions/{session_id}/webhook-deliveries/latest")
async def latest_deliveries(request: Request, session_id: str) -> dict[str, Any]:
    await _known_session(request, session_id)
    return {"deliveries": await storage_of(request).webhooks.latest_deliveries(session_id)}

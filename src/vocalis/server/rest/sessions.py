"""Session records and artifacts (§17.4): live sessions from the manager, ended ones from storage.

Artifact URLs are absolute and signed (HMAC-SHA256 keyed by the server secret over
``<session_id>:<type>:<expires>``), valid one hour, and fetchable without ``Authorization``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from vocalis.server.rest import errors
from vocalis.server.rest.deps import (
    is_authenticated,
    live_records,
    require_api_key,
    require_storage,
    settings_of,
    storage_of,
)
from vocalis.storage.errors import SessionActive
from vocalis.storage.sessions import ARTIFACT_TYPES, SessionRow, valid_session_id
from vocalis.storage.timestamps import iso

ARTIFACT_URL_TTL_SECONDS = 3600

router = APIRouter(
    tags=["sessions"], dependencies=[Depends(require_api_key), Depends(require_storage)]
)
artifact_router = APIRouter(
    tags=["sessions"], dependencies=[Depends(require_storage)]
)  # authenticated by the URL signature


# Storage keeps the engine's word for an ended session; the hosted service reports it as
# ``completed`` (§17.4), and ``status=ended`` stays accepted as a filter for older clients.
PUBLIC_STATUS = {"ended": "completed"}
STATUS_FILTER = {"completed": "ended"}


def summary(row: SessionRow) -> dict[str, Any]:
    """The §17.4 list fields; ``duration_seconds`` and ``ended_at`` are ``null`` while live."""
    ended = row.ended_us is not None and row.status == "ended"
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "status": PUBLIC_STATUS.get(row.status, row.status),
        "public_close_reason": row.public_close_reason,
        "duration_seconds": (
            round(max(0, (row.ended_us or 0) - row.created_us) / 1_000_000, 2) if ended else None
        ),
        "created_at": iso(row.created_us),
        "ended_at": iso(row.ended_us) if ended and row.ended_us is not None else None,
    }


def _signed_url(request: Request, session_id: str, artifact_type: str) -> str:
    base = settings_of(request).public_base_url or str(request.base_url)
    expires = int(time.time()) + ARTIFACT_URL_TTL_SECONDS
    sig = storage_of(request).box.sign(f"{session_id}:{artifact_type}:{expires}")
    return (
        f"{base.rstrip('/')}/v1/sessions/{session_id}/artifacts/{artifact_type}"
        f"?expires={expires}&sig={sig}"
    )


@router.get("/v1/sessions")
async def list_sessions(
    request: Request,
    status: Literal["active", "disconnected", "completed", "ended"] | None = None,
    agent_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = await storage_of(request).sessions.page(
        live=live_records(request),
        status=STATUS_FILTER.get(status, status) if status is not None else None,
        agent_id=agent_id,
        limit=limit,
        cursor=cursor,
    )
    return {
        "sessions": [summary(r) for r in page.items],
        "has_more": bool(page.next_cursor),
        "response_metadata": {"next_cursor": page.next_cursor},
    }


@router.get("/v1/sessions/{session_id}")
async def get_session(request: Request, session_id: str) -> dict[str, Any]:
    if not valid_session_id(session_id):
        raise errors.session_not_found()
    live = {r.session_id: r for r in live_records(request)}
    if session_id in live:
        row = SessionRow.from_record(live[session_id])
    else:
        found = await storage_of(request).sessions.get(session_id)
        if found is None:
            raise errors.session_not_found()
        row = found
    artifacts = [
        {
            "type": kind,
            "url": _signed_url(request, row.id, kind),
            "content_type": ARTIFACT_TYPES[kind],
        }
        for kind in row.artifact_types
    ]
    return {**summary(row), "config": row.config, "artifacts": artifacts}


@router.delete("/v1/sessions/{session_id}", status_code=204)
async def delete_session(request: Request, session_id: str) -> Response:
    live_ids = {r.session_id for r in live_records(request)}
    try:
        deleted = await storage_of(request).sessions.delete(session_id, live_ids)
    except SessionActive:
        raise errors.session_active() from None
    if not deleted:
        raise errors.session_not_found()
    return Response(status_code=204)


@artifact_router.get("/v1/sessions/{session_id}/artifacts/{artifact_type}")
async def get_artifact(
    request: Request,
    session_id: str,
    artifact_type: str,
    expires: int | None = None,
    sig: str | None = None,
) -> Response:
    storage = storage_of(request)
    signed = (
        expires is not None
        and sig is not None
        and expires >= time.time()
        and storage.box.verify(f"{session_id}:{artifact_type}:{expires}", sig)
    )
    if not signed and not is_authenticated(request):
        raise errors.unauthorized()
    artifact = await storage.sessions.artifact(session_id, artifact_type)
    if artifact is None:
        if await storage.sessions.get(session_id) is None:
            raise errors.session_not_found()
        raise errors.not_found()
    if artifact.path is not None:
        if not artifact.path.is_file():
            raise errors.not_found()
        return FileResponse(artifact.path, media_type=artifact.content_type)
    return Response(artifact.data or b"", media_type=artifact.content_type)

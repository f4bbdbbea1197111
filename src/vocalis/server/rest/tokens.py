"""Temporary tokens (§17.2), kept by the in-memory TokenStore that the WebSocket redeems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vocalis.server.rest.deps import (
    MISSING,
    JsonBody,
    require_api_key,
    settings_of,
)
from vocalis.server.state import app_state
from vocalis.storage.errors import InvalidInput, problems_from_pydantic
from vocalis.storage.timestamps import iso_from_seconds

router = APIRouter(tags=["tokens"], dependencies=[Depends(require_api_key)])


class TokenRequest(BaseModel):
    """Body of ``POST /v1/tokens``; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    expires_in_seconds: int = Field(60, ge=1, le=600)
    max_session_duration_seconds: int | None = Field(None, ge=60)


def _session_cap(request: Request, requested: int | None) -> int:
    upper = settings_of(request).default_max_session_duration_seconds
    if requested is None:
        return upper
    if requested > upper:
        raise InvalidInput.one(
            "max_session_duration_seconds", f"Input should be less than or equal to {upper}"
        )
    return requested


@router.get("/v1/token")
async def get_token(
    request: Request,
    expires_in_seconds: Annotated[int, Query(ge=1, le=600)],
    max_session_duration_seconds: Annotated[int | None, Query(ge=60)] = None,
) -> dict[str, Any]:
    cap = _session_cap(request, max_session_duration_seconds)
    token, _ = await app_state(request.app).tokens.issue(expires_in_seconds, cap)
    return {"token": token, "expires_in_seconds": expires_in_seconds}


@router.post(
    "/v1/tokens",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": TokenRequest.model_json_schema()}},
        }
    },
)
async def post_tokens(request: Request, body: JsonBody) -> dict[str, Any]:
    raw = {} if body is MISSING or body is None else body
    if not isinstance(raw, dict):
        raise InvalidInput.one("body", "Input should be a valid dictionary")
    try:
        req = TokenRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(problems_from_pydantic(exc.errors())) from None
    cap = _session_cap(request, req.max_session_duration_seconds)
    token, expires_at = await app_state(request.app).tokens.issue(req.expires_in_seconds, cap)
    return {"token": token, "expires_at": iso_from_seconds(expires_at)}

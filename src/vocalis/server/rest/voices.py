"""The voice catalog (§17.5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from vocalis.protocol.voices import DEFAULT_CATALOG
from vocalis.server.rest.deps import require_api_key, settings_of

router = APIRouter(tags=["voices"], dependencies=[Depends(require_api_key)])


@router.get("/v1/voices")
async def list_voices(request: Request) -> dict[str, Any]:
    default = settings_of(request).default_voice
    return {
        "voices": [
            {
                "voice_id": v.voice_id,
                "name": v.name,
                "language": v.language,
                "description": v.description,
                "default": v.voice_id == default,
            }
            for v in DEFAULT_CATALOG
        ],
        "default_voice_id": default,
    }

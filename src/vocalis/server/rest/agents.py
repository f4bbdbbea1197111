"""Stored agents (§17.3). Validation and PUT rules live in ``vocalis.storage.agent_model``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from vocalis.server.rest import errors
from vocalis.server.rest.deps import MISSING, JsonBody, require_api_key, require_storage, storage_of
from vocalis.storage.agent_model import AgentCreate, AgentUpdate
from vocalis.storage.errors import InvalidInput

router = APIRouter(
    tags=["agents"], dependencies=[Depends(require_api_key), Depends(require_storage)]
)


def _body_schema(model: type[AgentCreate]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _required(body: Any) -> Any:
    if body is MISSING:
        raise InvalidInput.one("body", "Field required")
    return body


@router.post("/v1/agents", status_code=201, openapi_extra=_body_schema(AgentCreate))
async def create_agent(request: Request, body: JsonBody) -> JSONResponse:
    record = await storage_of(request).agents.create(_required(body))
    return JSONResponse(record, status_code=201)


@router.get("/v1/agents")
async def list_agents(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = await storage_of(request).agents.page(limit, cursor)
    return {
        "agents": page.items,
        "has_more": page.has_more,
        "response_metadata": {"next_cursor": page.next_cursor},
    }


@router.get("/v1/agents/{agent_id}")
async def get_agent(request: Request, agent_id: str) -> dict[str, Any]:
    record = await storage_of(request).agents.get(agent_id)
    if record is None:
        raise errors.agent_not_found()
    return record


@router.put("/v1/agents/{agent_id}", openapi_extra=_body_schema(AgentUpdate))
async def update_agent(request: Request, agent_id: str, body: JsonBody) -> dict[str, Any]:
    store = storage_of(request).agents
    if not await store.exists(agent_id):
        raise errors.agent_not_found()  # 404 before judging the body
    record = await store.update(agent_id, _required(body))
    if record is None:
        raise errors.agent_not_found()
    return record


@router.delete("/v1/agents/{agent_id}", status_code=204)
async def delete_agent(request: Request, agent_id: str) -> Response:
    if not await storage_of(request).agents.delete(agent_id):
        raise errors.agent_not_found()
    return Response(status_code=204)

"""Error bodies of §17.1 for every non-2xx response, FastAPI's own errors included.

``{"code","message","param","request_id","errors","detail"}``: ``message`` is ``<param>: <problem>``
for validation errors, ``detail`` repeats it, ``errors`` lists every problem (else ``null``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vocalis.server.rest.middleware import REQUEST_ID_KEY
from vocalis.session.shared import SharedStateUnavailable
from vocalis.storage.errors import InvalidInput, Problem, problems_from_pydantic

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.problems = problems


def invalid_json() -> ApiError:
    return ApiError(400, "invalid_request", "Invalid JSON body")


def missing_authorization() -> ApiError:
    return ApiError(401, "unauthorized", "Missing authorization header")


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "Unauthorized")


def agent_not_found() -> ApiError:
    return ApiError(404, "agent_not_found", "Agent not found", param="agent_id")


def session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "Session not found", param="session_id")


def not_found() -> ApiError:
    return ApiError(404, "not_found", "Not found")


def session_active() -> ApiError:
    return ApiError(
        409,
        "session_active",
        "Session is still active; end it before deleting",
        param="session_id",
    )


def payload_too_large() -> ApiError:
    return ApiError(413, "payload_too_large", "Request body too large")


def validation_error(problems: list[Problem]) -> ApiError:
    first = problems[0]
    message = f"{first.param}: {first.message}" if first.param else first.message
    return ApiError(422, "validation_error", message, param=first.param, problems=problems)


def error_body(error: ApiError, request_id: str) -> dict[str, Any]:
    errors = (
        [{"message": p.message, "param": p.param} for p in error.problems]
        if error.problems
        else None
    )
    return {
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "request_id": request_id,
        "errors": errors,
        "detail": error.message,
    }


def error_response(request: Request, error: ApiError) -> JSONResponse:
    request_id = str(request.scope.get(REQUEST_ID_KEY, ""))
    return JSONResponse(error_body(error, request_id), status_code=error.status)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return error_response(request, validation_error(exc.problems))


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(request, invalid_json())
    problems = problems_from_pydantic(errors, drop_prefixes=("query", "path", "body", "header"))
    return error_response(request, validation_error(problems))


_HTTP_ERRORS = {
    400: invalid_json,
    401: unauthorized,
    404: not_found,
    405: not_found,  # other methods of a path are routes the server does not provide (§2)
    413: payload_too_large,
}


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    make = _HTTP_ERRORS.get(exc.status_code)
    if make is not None:
        error = make()
    elif exc.status_code >= 500:
        error = ApiError(exc.status_code, "internal_error", "Internal server error")
    else:
        error = ApiError(exc.status_code, "invalid_request", str(exc.detail))
    response = error_response(request, error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _shared_state_down(request: Request, exc: Exception) -> JSONResponse:
    """The cluster's store (Redis) is unreachable. The contract has no REST code for it: 503
    tells balancers and clients to retry, with the catalogue's retryable ``internal_error``."""
    log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    message = "Shared state is unavailable; try again later"
    return error_response(request, ApiError(503, "internal_error", message))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SharedStateUnavailable, _shared_state_down)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)

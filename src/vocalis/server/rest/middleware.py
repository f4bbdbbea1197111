"""Request ids (``X-Request-Id: req_…`` on every response) and the last-resort 500 body."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vocalis.ids import request_id

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "vocalis.request_id"


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streams untouched, sees every exception first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id()
        scope[REQUEST_ID_KEY] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (%s)", scope.get("method"), scope.get("path"), rid
            )
            if started:
                raise
            body = json.dumps(
                {
                    "code": "internal_error",
                    "message": "Internal server error",
                    "param": None,
                    "request_id": rid,
                    "errors": None,
                    "detail": "Internal server error",
                }
            ).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

"""REST API of §17 and §19: tokens, agents, sessions, voices, webhooks, with the §17.1 error bodies.

The app factory calls :func:`include_rest` once; routes read ``request.app.state.vocalis``
(``settings``, ``tokens``, ``storage``, ``manager``).
"""

from __future__ import annotations

from fastapi import FastAPI

from vocalis.server.rest import agents, sessions, tokens, voices, webhooks
from vocalis.server.rest.errors import install_error_handlers
from vocalis.server.rest.middleware import RequestIdMiddleware


def include_rest(app: FastAPI) -> None:
    """Add the routers, the error handlers and the request-id middleware."""
    app.include_router(tokens.router)
    app.include_router(agents.router)
    app.include_router(sessions.router)
    app.include_router(sessions.artifact_router)
    app.include_router(voices.router)
    app.include_router(webhooks.router)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)


__all__ = ["include_rest"]

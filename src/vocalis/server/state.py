"""What every route and socket of one server shares, and the one typed way to reach it.

Routes read the shared state with :func:`app_state` rather than ``request.app.state.vocalis``
(typed ``Any`` by Starlette): mypy then checks every field a route uses, and an app built without
the factory fails here, loudly, instead of with an ``AttributeError`` deep inside a handler.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from starlette.applications import Starlette

from vocalis.providers.base import ProviderSet
from vocalis.server.tokens import TokenStore
from vocalis.session.clock import Clock
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings

if TYPE_CHECKING:
    from vocalis.server.webhooks import WebhookDispatcher
    from vocalis.session.shared import SharedState
    from vocalis.storage import Storage


@dataclass
class AppState:
    """What every route and socket of one server shares (``app.state.vocalis``).

    ``storage``, ``providers`` and ``manager`` are ``None`` until start-up has opened or built
    them: REST waits for storage (``require_storage``), sockets wait for ``ready``.
    """

    settings: Settings
    clock: Clock
    tokens: TokenStore
    manager: SessionManager | None = None
    providers: ProviderSet | None = None
    storage: Storage | None = None
    shared: SharedState | None = None  # the cluster's store (redis_url), else None
    webhooks: WebhookDispatcher | None = None  # §19 deliveries, once storage is open
    status: Literal["starting", "ok", "draining"] = "starting"
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Why start-up failed (models or storage); the server then stops instead of serving 503s.
    failure: str | None = None


def app_state(app: Starlette) -> AppState:
    """The shared state of ``app`` (set by the app factory, or the standalone REST server)."""
    state = getattr(app.state, "vocalis", None)
    if not isinstance(state, AppState):
        raise RuntimeError("app.state.vocalis is not an AppState: build the app with create_app()")
    return state

"""``session.update`` on a live session (§7.1, App. A): the next configuration, and what the
timeline keeps of the change."""

from __future__ import annotations

from typing import Any

from vocalis.protocol import errors
from vocalis.protocol.config import (
    SessionConfig,
    SessionIn,
    ValidationContext,
    parse_session,
    pre_connect_echo,
    validate_update,
)
from vocalis.session.agents import stored_agent_config
from vocalis.session.hooks import AgentLookup
from vocalis.settings import Settings

_SECRET_KEYS = {"api_key", "secret", "value"}


async def next_config(
    raw: dict[str, Any] | None,
    current: SessionConfig,
    settings: Settings,
    agent_lookup: AgentLookup | None,
    *,
    first_after_fallback: bool,
) -> SessionConfig:
    """The configuration after an update, or the :class:`ProtocolError` to report.

    After the legacy fallback (App. A) the client's first update is validated as a first one and
    may name a stored agent, which then replaces the default configuration.
    """
    try:
        update = parse_session(raw)
    except ValueError:
        raise errors.invalid_fields("session.update") from None
    ctx = ValidationContext(tuple(settings.voice_ids()))
    if first_after_fallback and update.agent_id is not None:
        return await _legacy_agent_config(update, current.id, settings, agent_lookup, ctx)
    return validate_update(update, current, ctx, first=first_after_fallback)


async def _legacy_agent_config(
    update: SessionIn,
    session_id: str,
    settings: Settings,
    agent_lookup: AgentLookup | None,
    ctx: ValidationContext,
) -> SessionConfig:
    """App. A: ``agent_id`` in the first update after the fallback replaces the config."""
    if update.other_fields_set():
        raise errors.agent_id_exclusive()
    assert update.agent_id is not None
    base = SessionConfig(
        id=session_id,
        default_system_prompt=settings.default_system_prompt,
        default_voice=settings.default_voice,
    )
    return await stored_agent_config(update.agent_id, base, agent_lookup, ctx)


def config_change(raw: dict[str, Any], wall: float, during_turn_id: str | None) -> dict[str, Any]:
    """A timeline ``config_changes`` entry (§17.4), secrets removed (§6.7)."""
    return {
        "received_at_ms": int(wall * 1000),
        "during_turn_id": during_turn_id,
        "update": _redact(_pre_connect_names(raw)),
    }


def _pre_connect_names(raw: dict[str, Any]) -> dict[str, Any]:
    """Pre-connect headers as names only (§6.1), whatever shape the client gave them in."""
    items = raw.get("pre_connect_requests")
    if not isinstance(items, list):
        return raw
    return {**raw, "pre_connect_requests": [pre_connect_echo(item) for item in items]}


def _redact(obj: Any) -> Any:
    """A copy of a client ``session`` object without secrets (§6.7)."""
    if isinstance(obj, dict):
        return {k: ("[redacted]" if k in _SECRET_KEYS else _redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v) for v in obj]
    return obj

"""Starting from a stored agent (§6.6): its configuration as a session sees it."""

from __future__ import annotations

from dataclasses import replace

from pydantic import ValidationError

from vocalis.protocol import errors
from vocalis.protocol.config import SessionConfig, ValidationContext, parse_session, validate_update
from vocalis.protocol.errors import ProtocolError
from vocalis.session.hooks import AgentLookup


async def stored_agent_config(
    agent_id: str, base: SessionConfig, lookup: AgentLookup | None, ctx: ValidationContext
) -> SessionConfig:
    """``base`` configured from the agent; ``agent_not_found`` / ``invalid_config`` (fatal)."""
    spec = await lookup(agent_id) if lookup is not None else None
    if spec is None:
        raise errors.agent_not_found()
    agent_ctx = ValidationContext(ctx.catalog_ids, allow_http_tools=True)
    try:
        config = validate_update(parse_session(spec.session), base, agent_ctx, first=True)
    except (ProtocolError, ValidationError) as exc:
        detail = exc.message if isinstance(exc, ProtocolError) else "invalid stored agent"
        raise errors.invalid_agent_config(detail) from None
    # the agent's HTTP tools always remain; later client `tools` replace only the rest
    return replace(
        config,
        agent_tools=tuple(t for t in config.tools if t.http is not None),
        tools=tuple(t for t in config.tools if t.http is None),
        agent_id=agent_id,
        llm=spec.llm,
    )

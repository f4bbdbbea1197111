"""The agents table: CRUD with PUT semantics, cursor pages, and the engine's AgentLookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vocalis import ids
from vocalis.session.hooks import AgentSpec
from vocalis.storage import cursor as cursors
from vocalis.storage.agent_model import AgentDocument, AgentRules, build_agent, valid_agent_id
from vocalis.storage.crypto import SecretBox
from vocalis.storage.errors import InvalidInput
from vocalis.storage.schema import agents
from vocalis.storage.timestamps import iso, now_us
from vocalis.storage.writes import WriteGate


@dataclass(frozen=True)
class AgentPage:
    items: list[dict[str, Any]]  # {"id", "name", "created_at", "updated_at"}
    next_cursor: str  # "" at the end

    @property
    def has_more(self) -> bool:
        return bool(self.next_cursor)


class AgentStore:
    def __init__(
        self, engine: AsyncEngine, box: SecretBox, rules: AgentRules, gate: WriteGate
    ) -> None:
        self._engine = engine
        self._box = box
        self._rules = rules
        self._gate = gate

    async def create(self, body: Any) -> dict[str, Any]:
        now = now_us()
        doc = build_agent(body, None, self._rules, now)
        agent_id = ids.agent_id()
        async with self._gate.begin() as conn:
            await conn.execute(
                insert(agents).values(
                    id=agent_id,
                    name=doc.public["name"],
                    created_us=now,
                    updated_us=now,
                    document=json.dumps(doc.public),
                    secrets=self._box.seal(doc.secrets),
                )
            )
        return doc.record(agent_id, now, now, self._rules)

    async def update(self, agent_id: str, body: Any) -> dict[str, Any] | None:
        if not valid_agent_id(agent_id):
            return None
        async with self._gate.begin() as conn:
            query = select(agents).where(agents.c.id == agent_id)
            if self._engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = (await conn.execute(query)).one_or_none()
            if row is None:
                return None
            now = max(now_us(), row.updated_us + 1)
            doc = build_agent(body, self._document(row), self._rules, now)
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(
                    name=doc.public["name"],
                    updated_us=now,
                    document=json.dumps(doc.public),
                    secrets=self._box.seal(doc.secrets),
                )
            )
        return doc.record(agent_id, row.created_us, now, self._rules)

    async def get(self, agent_id: str) -> dict[str, Any] | None:
        row = await self._row(agent_id)
        if row is None:
            return None
        return self._document(row).record(row.id, row.created_us, row.updated_us, self._rules)

    async def exists(self, agent_id: str) -> bool:
        return await self._row(agent_id) is not None

    async def delete(self, agent_id: str) -> bool:
        if not valid_agent_id(agent_id):
            return False
        async with self._gate.begin() as conn:
            result = await conn.execute(delete(agents).where(agents.c.id == agent_id))
        return bool(result.rowcount)

    async def page(self, limit: int, cursor: str | None) -> AgentPage:
        query = select(agents.c.id, agents.c.name, agents.c.created_us, agents.c.updated_us)
        query = cursors.newest_first(query, agents, cursor, limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        shown = rows[:limit]
        items = [
            {
                "id": r.id,
                "name": r.name,
                "created_at": iso(r.created_us),
                "updated_at": iso(r.updated_us),
            }
            for r in shown
        ]
        more = len(rows) > limit
        next_cursor = cursors.encode(shown[-1].created_us, shown[-1].id) if more else ""
        return AgentPage(items, next_cursor)

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(agents))).scalar_one())

    async def lookup(self, agent_id: str) -> AgentSpec | None:
        """:class:`~vocalis.session.hooks.AgentLookup`: the agent as a session sees it (§6.6)."""
        row = await self._row(agent_id)
        if row is None:
            return None
        doc = self._document(row)
        return AgentSpec(
            agent_id=row.id,
            session=doc.session_object(with_secrets=True),
            llm=doc.custom_llm(),
        )

    async def _row(self, agent_id: str) -> Any:
        if not valid_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            query = select(agents).where(agents.c.id == agent_id)
            return (await conn.execute(query)).one_or_none()

    def _document(self, row: Any) -> AgentDocument:
        return AgentDocument(json.loads(row.document), self._box.open(row.secrets))


__all__ = ["AgentPage", "AgentStore", "InvalidInput"]

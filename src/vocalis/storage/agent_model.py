"""Stored agents (§17.3) without I/O: validate a request body, apply PUT rules, build views.

An agent is kept as two JSON documents: ``public`` (everything a response may show) and
``secrets`` (HTTP tool header values and the custom LLM API key, encrypted at rest by the store).
Session-level fields (``system_prompt``, ``greeting``, ``input``, ``output``, ``tools``,
``pre_connect_requests``) are validated by the WebSocket validators of ``protocol.config`` so an
agent accepted here is accepted by ``session.update``; errors carry the same wording.

PUT: present fields replace the stored value, absent ones are kept. A stored agent is turned back
into the body it would take (:meth:`AgentDocument.request_view`, secrets omitted) and the PUT
fields are laid over it; the same merge rules then keep what a client did not resend: a tool
matches its predecessor by ``id``, else by ``name``; a header entry with only ``name`` keeps the
stored value; ``remove: true`` drops it; an ``llm`` entry without ``api_key`` keeps the stored key.

Unknown body fields are ignored, as on the hosted API and as for ``session`` objects (§5).

Why one module of ~480 lines: validation, the PUT merge rules and the views of one document
belong together; each rule refers to the others (a kept secret, a tool matched by id or name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from vocalis import ids
from vocalis.protocol import errors as protocol_errors
from vocalis.protocol.config import (
    CustomLLM,
    SessionConfig,
    ValidationContext,
    parse_session,
    pre_connect_echo,
    validate_update,
)
from vocalis.protocol.errors import ProtocolError
from vocalis.storage.errors import InvalidInput, Problem, problems_from_pydantic
from vocalis.storage.timestamps import iso

AGENT_ID_RE = re.compile(r"^agent_[0-9a-f]{32}$")

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Prompt = Annotated[str, StringConstraints(max_length=65_536)]


class AgentCreate(BaseModel):
    """Top-level shape of ``POST /v1/agents``; nested session fields are checked separately."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    system_prompt: Prompt
    voice: Any
    greeting: str | None = None
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    tools: list[Any] | None = None
    llm: list[Any] | None = None
    pre_connect_requests: list[Any] | None = None
    transfer_targets: list[Any] | None = None
    outbound_trunk_id: str | None = None
    caller_id: str | None = None


class AgentUpdate(AgentCreate):
    """``PUT /v1/agents/{id}``: every field optional."""

    name: Name | None = None  # type: ignore[assignment]
    system_prompt: Prompt | None = None  # type: ignore[assignment]
    voice: Any = None


class LlmIn(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    api_key: str | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None


@dataclass(frozen=True)
class AgentRules:
    """What validation needs from the server configuration."""

    catalog_ids: tuple[str, ...]
    default_system_prompt: str
    default_voice: str


@dataclass
class AgentDocument:
    public: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict)

    # ---- views
    def request_view(self) -> dict[str, Any]:
        """The body that would recreate this agent, secrets left out (the base of a PUT)."""
        p = self.public
        return {
            "name": p["name"],
            "system_prompt": p["system_prompt"],
            "voice": p["voice_id"],
            "greeting": p.get("greeting"),
            "input": p.get("input"),
            "output": p.get("output"),
            "tools": [
                _tool_with_headers(t, [{"name": h["name"]} for h in _headers(t)])
                for t in p.get("tools", [])
            ],
            "llm": [dict(m) for m in p.get("llm", [])],
            "pre_connect_requests": _pre_connect_names(p),
            "transfer_targets": p.get("transfer_targets", []),
            "outbound_trunk_id": p.get("outbound_trunk_id"),
            "caller_id": p.get("caller_id"),
        }

    def session_object(self, *, with_secrets: bool) -> dict[str, Any]:
        """A §6 ``session`` object (``voice_id`` → ``output.voice``), for sessions and echoes."""
        p = self.public
        header_values: dict[str, dict[str, str]] = self.secrets.get("headers", {})
        tools = []
        for tool in p.get("tools", []):
            values = header_values.get(tool["id"], {}) if with_secrets else {}
            tools.append(
                _tool_with_headers(
                    tool,
                    [
                        {"name": h["name"], "value": values.get(h["name"], "")}
                        for h in _headers(tool)
                    ],
                )
            )
        session: dict[str, Any] = {
            "system_prompt": p["system_prompt"],
            "greeting": p.get("greeting"),
            "input": p.get("input"),
            "output": {**(p.get("output") or {}), "voice": p["voice_id"]},
            "tools": tools,
            "pre_connect_requests": (
                self.secrets.get("pre_connect_requests", p.get("pre_connect_requests", []))
                if with_secrets
                else _pre_connect_names(p)
            ),
        }
        return {k: v for k, v in session.items() if v is not None}

    def custom_llm(self) -> tuple[CustomLLM, ...]:
        key = self.secrets.get("llm_api_key")
        return tuple(
            CustomLLM(m["base_url"], m["model"], key, m.get("reasoning_effort"))
            for m in self.public.get("llm", [])
        )

    def record(
        self, agent_id: str, created_us: int, updated_us: int, rules: AgentRules
    ) -> dict[str, Any]:
        """The agent record of §17.3.3."""
        p = self.public
        cfg = _resolve(self.session_object(with_secrets=False), rules, extra_voice=p["voice_id"])
        echo = cfg.echo()
        tools = []
        for stored, echoed in zip(p.get("tools", []), echo["tools"], strict=True):
            if echoed.get("http"):
                echoed["http"]["headers"] = [
                    {"name": h["name"], "last_set_at": iso(h["last_set_us"])}
                    for h in _headers(stored)
                ]
            tools.append(echoed)
        return {
            "id": agent_id,
            "name": p["name"],
            "system_prompt": p["system_prompt"],
            "greeting": p.get("greeting"),
            "tools": tools,
            "pre_connect_requests": _pre_connect_names(p),
            "voice": {"voice_id": p["voice_id"]},
            "input": echo["input"],
            "output": echo["output"],
            "transfer_targets": p.get("transfer_targets", []),
            "outbound_trunk_id": p.get("outbound_trunk_id"),
            "caller_id": p.get("caller_id"),
            "llm": [m.echo() for m in self.custom_llm()],
            "created_at": iso(created_us),
            "updated_at": iso(updated_us),
        }


def _keep_pre_connect_values(items: Any, stored: list[Any]) -> Any:
    """On ``PUT``, a pre-connect header given by name only keeps its stored value, as tool
    headers do (§17.3.1): a record read back and sent again must not wipe the credentials."""
    if not isinstance(items, list):
        return items  # the validators report the type error
    out: list[Any] = []
    for i, item in enumerate(items):
        headers = item.get("http", {}).get("headers") if isinstance(item, dict) else None
        old = stored[i] if i < len(stored) and isinstance(stored[i], dict) else {}
        old_headers = (old.get("http") or {}).get("headers")
        if not isinstance(headers, list) or not isinstance(old_headers, list):
            out.append(item)
            continue
        values = {
            h["name"].lower(): h.get("value")
            for h in old_headers
            if isinstance(h, dict) and isinstance(h.get("name"), str)
        }
        merged = [
            {**h, "value": values[h["name"].lower()]}
            if isinstance(h, dict)
            and isinstance(h.get("name"), str)
            and "value" not in h
            and values.get(h["name"].lower()) is not None
            else h
            for h in headers
        ]
        out.append({**item, "http": {**item["http"], "headers": merged}})
    return out


def _pre_connect_names(public: dict[str, Any]) -> list[Any]:
    """Stored pre-connect requests with header names only (§6.1); older rows kept values here."""
    return [pre_connect_echo(item) for item in public.get("pre_connect_requests", [])]


def _headers(tool: dict[str, Any]) -> list[dict[str, Any]]:
    http = tool.get("http")
    return list(http.get("headers", [])) if isinstance(http, dict) else []


def _tool_with_headers(tool: dict[str, Any], headers: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(tool)
    if isinstance(out.get("http"), dict):
        out["http"] = {**out["http"], "headers": headers}
    return out


# ------------------------------------------------------------------------------------ building
def build_agent(
    raw: Any, previous: AgentDocument | None, rules: AgentRules, now_us: int
) -> AgentDocument:
    """Validate a create (``previous is None``) or update body; raise :class:`InvalidInput`."""
    if not isinstance(raw, dict):
        raise InvalidInput.one("body", "Input should be a valid dictionary")
    model_cls = AgentCreate if previous is None else AgentUpdate
    try:
        model = model_cls.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(problems_from_pydantic(exc.errors())) from None

    body: dict[str, Any] = previous.request_view() if previous else {}
    if previous is not None:  # kept as stored, header values included, unless replaced below
        body["pre_connect_requests"] = previous.session_object(with_secrets=True)[
            "pre_connect_requests"
        ]
    for name in model.model_fields_set:
        body[name] = raw[name]
    if previous is not None and "pre_connect_requests" in model.model_fields_set:
        body["pre_connect_requests"] = _keep_pre_connect_values(
            body["pre_connect_requests"],
            previous.session_object(with_secrets=True)["pre_connect_requests"],
        )
    problems = [
        Problem(name, "Input should be a valid string")
        for name in ("name", "system_prompt")
        if name in model.model_fields_set and body[name] is None
    ]
    if problems:
        raise InvalidInput(problems)

    voice_id = _voice_id(body.get("voice"), rules)
    llm_public, llm_key = _llm(body.get("llm") or [], previous)
    tools_raw, header_meta = _merge_tools(body.get("tools") or [], previous, now_us)

    output = body.get("output")
    if isinstance(output, dict):
        output = {k: v for k, v in output.items() if k != "voice"}  # §17.3: ignored in requests
    session_raw = {
        "system_prompt": body["system_prompt"],
        "greeting": body.get("greeting"),
        "input": body.get("input"),
        "output": output,
        "tools": tools_raw,
        "pre_connect_requests": body.get("pre_connect_requests") or [],
    }
    try:
        parsed = parse_session(session_raw)
    except ValidationError as exc:
        raise InvalidInput(problems_from_pydantic(exc.errors())) from None
    _resolve(session_raw | {"output": {**(output or {}), "voice": voice_id}}, rules)

    tools_public: list[dict[str, Any]] = []
    secret_headers: dict[str, dict[str, str]] = {}
    for tool_in, tool_raw in zip(parsed.tools or [], tools_raw, strict=True):
        doc = tool_in.model_dump(exclude_none=True)
        doc["id"] = tool_raw["id"]
        if tool_in.http is not None:
            meta = header_meta[tool_raw["id"]]
            method = tool_in.http.get("http_method") or "POST"
            doc["http"] = {
                "url": tool_in.http["url"],
                "http_method": method.upper(),
                "headers": [{"name": n, "last_set_us": t} for n, _, t in meta],
            }
            secret_headers[tool_raw["id"]] = {n: v for n, v, _ in meta}
        tools_public.append(doc)

    public = {
        "name": body["name"],
        "system_prompt": body["system_prompt"],
        "greeting": parsed.greeting or None,
        "voice_id": voice_id,
        "input": parsed.input.model_dump(exclude_none=True) if parsed.input else None,
        "output": parsed.output.model_dump(exclude_none=True) if parsed.output else None,
        "tools": tools_public,
        "llm": llm_public,
        "pre_connect_requests": [pre_connect_echo(x) for x in parsed.pre_connect_requests or []],
        "transfer_targets": _list_or_empty(body.get("transfer_targets")),
        "outbound_trunk_id": body.get("outbound_trunk_id"),
        "caller_id": body.get("caller_id"),
    }
    secrets = {
        "headers": secret_headers,
        "llm_api_key": llm_key,
        # never executed (§17.3), but stored as given, values encrypted with the other secrets
        "pre_connect_requests": list(parsed.pre_connect_requests or []),
    }
    return AgentDocument(public, secrets)


def _list_or_empty(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _resolve(session: dict[str, Any], rules: AgentRules, extra_voice: str = "") -> SessionConfig:
    """Run the WebSocket validators over a session object; errors become 422 problems."""
    catalog = rules.catalog_ids + ((extra_voice,) if extra_voice else ())
    ctx = ValidationContext(catalog_ids=catalog, allow_http_tools=True)
    base = SessionConfig(
        id="agent",
        default_system_prompt=rules.default_system_prompt,
        default_voice=rules.default_voice,
    )
    try:
        return validate_update(parse_session(session), base, ctx, first=True)
    except ProtocolError as exc:
        raise InvalidInput.one(exc.param, exc.message) from None


def _voice_id(value: Any, rules: AgentRules) -> str:
    if isinstance(value, dict):
        if "voice_id" not in value:
            raise InvalidInput.one("voice.voice_id", "Field required")
        value = value["voice_id"]
        if not isinstance(value, str):
            raise InvalidInput.one("voice.voice_id", "Input should be a valid string")
    if not isinstance(value, str):
        raise InvalidInput.one("voice", "Input should be a valid string or object")
    if value not in rules.catalog_ids:
        error = protocol_errors.invalid_voice(value, list(rules.catalog_ids), param="voice")
        raise InvalidInput.one("voice", error.message)
    return value


def _llm(items: Any, previous: AgentDocument | None) -> tuple[list[dict[str, Any]], str | None]:
    if not isinstance(items, list):
        raise InvalidInput.one("llm", "Input should be a valid list")
    if len(items) > 1:
        raise InvalidInput.one("llm", "List should have at most 1 item after validation")
    if not items:
        return [], None  # ``llm: []`` reverts to the server's model and forgets the key
    try:
        llm = LlmIn.model_validate(items[0])
    except ValidationError as exc:
        raise InvalidInput(problems_from_pydantic(exc.errors(), prefix=("llm", 0))) from None
    key = llm.api_key
    if key is None and previous is not None:
        key = previous.secrets.get("llm_api_key")
    public = {
        "base_url": llm.base_url,
        "model": llm.model,
        "reasoning_effort": llm.reasoning_effort,
    }
    return [public], key


HeaderMeta = list[tuple[str, str, int]]  # (name, value, last_set_us)


def _merge_tools(
    tools: Any, previous: AgentDocument | None, now_us: int
) -> tuple[list[Any], dict[str, HeaderMeta]]:
    """Give each tool its id (kept from its predecessor) and resolve its header values."""
    if not isinstance(tools, list):
        return tools, {}  # parse_session reports the type error
    stored = list(previous.public.get("tools", [])) if previous else []
    stored_values: dict[str, dict[str, str]] = (
        previous.secrets.get("headers", {}) if previous else {}
    )
    predecessors = _match_predecessors(tools, stored)
    out: list[Any] = []
    meta: dict[str, HeaderMeta] = {}
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            out.append(tool)
            continue
        pred = predecessors.get(i)
        tool_id = pred["id"] if pred else ids.tool_id()
        tool = {**tool, "id": tool_id}
        http = tool.get("http")
        if isinstance(http, dict) and isinstance(http.get("headers", []), list):
            pred_values = stored_values.get(pred["id"], {}) if pred else {}
            old = {
                h["name"].lower(): (h["name"], pred_values.get(h["name"], ""), h["last_set_us"])
                for h in (_headers(pred) if pred else [])
            }
            resolved = _merge_headers(
                f"tools[{i}].http.headers", http.get("headers") or [], old, now_us
            )
            if resolved is not None:
                meta[tool_id] = resolved
                tool["http"] = {
                    **http,
                    "headers": [{"name": n, "value": v} for n, v, _ in resolved],
                }
        out.append(tool)
    return out, meta


def _match_predecessors(tools: list[Any], stored: list[dict[str, Any]]) -> dict[int, Any]:
    by_id = {t["id"]: t for t in stored}
    claimed: set[str] = set()
    found: dict[int, Any] = {}
    for i, tool in enumerate(tools):
        tid = tool.get("id") if isinstance(tool, dict) else None
        if isinstance(tid, str) and tid in by_id and tid not in claimed:
            found[i] = by_id[tid]
            claimed.add(tid)
    for i, tool in enumerate(tools):
        if i in found or not isinstance(tool, dict):
            continue
        match = next(
            (t for t in stored if t["name"] == tool.get("name") and t["id"] not in claimed), None
        )
        if match is not None:
            found[i] = match
            claimed.add(match["id"])
    return found


def _merge_headers(
    p: str, entries: list[Any], old: dict[str, tuple[str, str, int]], now_us: int
) -> HeaderMeta | None:
    """Resolve header entries; ``None`` when their shape is wrong (left to the validator)."""
    resolved: HeaderMeta = []
    seen: set[str] = set()
    for j, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return None
        name: str = entry["name"]
        remove = entry.get("remove", False)
        if remove is not None and not isinstance(remove, bool):
            raise InvalidInput.one(f"{p}[{j}].remove", "Input should be a valid boolean")
        if name.lower() in seen:
            raise InvalidInput.one(f"{p}[{j}].name", f"'{p}[{j}].name' must be unique")
        seen.add(name.lower())
        if remove:
            continue
        value = entry.get("value")
        if value is None:
            if name.lower() not in old:
                raise InvalidInput.one(f"{p}[{j}].value", "Field required")
            _, kept, last_set = old[name.lower()]
            resolved.append((name, kept, last_set))
        elif not isinstance(value, str):
            raise InvalidInput.one(f"{p}[{j}].value", "Input should be a valid string")
        else:
            resolved.append((name, value, now_us))
    return resolved


def valid_agent_id(agent_id: str) -> bool:
    return bool(AGENT_ID_RE.match(agent_id))

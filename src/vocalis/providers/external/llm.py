"""Chat with tools on an OpenAI-compatible server (``POST …/chat/completions``, streamed).

Used for the server-wide model when ``llm_base_url`` is set, and for a stored agent's custom
LLM (contract §17.3.2) through :func:`custom_llm_factory`.

Tool calls come as streamed ``tool_calls`` fragments, assembled by index and yielded once the
stream ends. Small models often write the call as JSON text in ``content`` instead; when the
request offers tools, such text is held back from speech and parsed at the end with
:mod:`vocalis.providers.toolcall_parsing`. Calls to tools the request did not offer are dropped,
and so are calls whose arguments are not a JSON object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from vocalis.protocol.config import CustomLLM
from vocalis.providers.base import (
    LLM,
    LLMEvent,
    LLMRequest,
    TextDelta,
    ToolCallRequest,
)
from vocalis.providers.chat_format import message_dict, tool_dicts
from vocalis.providers.external._http import (
    REQUEST_ERRORS,
    ClientSource,
    auth_headers,
    endpoint,
    http_error,
    stream_error,
    timeout,
    transport_error,
)
from vocalis.providers.toolcall_parsing import (
    ToolCallHoldback,
    parse_tool_calls,
    strip_call_markup,
)

logger = logging.getLogger(__name__)

WHAT = "LLM request"
DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Joins streamed ``tool_calls`` fragments into calls, keyed by their ``index``."""

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}

    def add(self, fragments: Any) -> None:
        if not isinstance(fragments, list):
            return
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index")
            slot = self._calls.setdefault(
                index if isinstance(index, int) else position, _PendingCall()
            )
            if isinstance(fragment.get("id"), str) and fragment["id"]:
                slot.id = fragment["id"]
            function = fragment.get("function") or {}
            name = function.get("name")
            # Fragments append to the name, but some servers repeat the whole name in each one.
            if isinstance(name, str) and name and name != slot.name:
                slot.name += name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                slot.arguments.append(arguments)
            elif isinstance(arguments, dict):  # a few servers send an object, not a string
                slot.arguments.append(json.dumps(arguments))

    def calls(self, allowed: set[str]) -> list[ToolCallRequest]:
        """The completed calls to ``allowed`` tools with arguments that parse to an object."""
        done: list[ToolCallRequest] = []
        for _, pending in sorted(self._calls.items()):
            text = "".join(pending.arguments).strip()
            try:
                arguments = json.loads(text) if text else {}
            except json.JSONDecodeError:
                logger.debug("dropped a call to %r: arguments are not valid JSON", pending.name)
                continue
            if not isinstance(arguments, dict):
                logger.debug("dropped a call to %r: arguments are not an object", pending.name)
                continue
            if pending.name not in allowed:
                logger.debug("dropped a call to %r: no such tool offered", pending.name)
                continue
            done.append(ToolCallRequest(pending.name, arguments, pending.id))
        return done


async def _sse_objects(response: httpx.Response) -> AsyncIterator[Any]:
    """The JSON objects of a server-sent event stream, up to ``[DONE]``.

    A ``data:`` line holding a whole JSON value is used at once (not every server ends each
    event with a blank line); otherwise data lines are joined until the blank line."""
    pending: list[str] = []
    async for line in response.aiter_lines():
        if not line.strip():
            if pending:
                data, pending = "\n".join(pending), []
                if data.strip() == "[DONE]":
                    return
                decoded = _decode(data)
                if decoded is not None:
                    yield decoded
            continue
        if not line.startswith("data:"):
            continue  # comments (": keep-alive"), event:, id:, retry:
        data = line[5:].removeprefix(" ")
        if data.strip() == "[DONE]" and not pending:
            return
        if not pending:
            decoded = _decode(data, quiet=True)
            if decoded is not None:
                yield decoded
                continue
        pending.append(data)
    if pending:
        decoded = _decode("\n".join(pending))
        if decoded is not None:
            yield decoded


def _decode(data: str, *, quiet: bool = False) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        if not quiet:
            logger.debug("skipped an undecodable stream event (%d chars)", len(data))
        return None


class OpenAIChatLLM:
    """Streams one Chat Completions request per reply."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        reasoning_effort: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        shared_client: bool = False,
    ) -> None:
        self.url = endpoint(base_url, "chat/completions")
        self.model = model
        self.reasoning_effort = reasoning_effort
        self._api_key = api_key
        self._timeout = timeout(timeout_seconds)
        self._clients = ClientSource(client, shared=shared_client)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatLLM(url={self.url!r}, model={self.model!r})"

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_dict(m) for m in request.messages],
            "stream": True,
            "max_tokens": request.max_tokens,
        }
        if request.tools:
            body["tools"] = tool_dicts(request)
        if self.reasoning_effort:
            body["reasoning_effort"] = self.reasoning_effort
        return body

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        allowed = {tool.name for tool in request.tools}
        native = ToolCallAssembler()
        # Text may hide a tool call only when tools are offered.
        holdback = ToolCallHoldback() if request.tools else None
        last_text = ""
        try:
            async with self._clients.get().stream(
                "POST",
                self.url,
                json=self.request_body(request),
                headers=auth_headers(self._api_key),
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 400:
                    raise await http_error(response, WHAT, code="llm_error", api_key=self._api_key)
                async for chunk in self._chunks(response):
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error") is not None and not chunk.get("choices"):
                        raise stream_error(chunk, WHAT, code="llm_error", api_key=self._api_key)
                    choices = chunk.get("choices")
                    if not isinstance(choices, list) or not choices:
                        continue
                    choice = choices[0] if isinstance(choices[0], dict) else {}
                    delta = choice.get("delta") or choice.get("message")
                    if not isinstance(delta, dict):
                        continue
                    native.add(delta.get("tool_calls"))
                    content = delta.get("content")
                    if not isinstance(content, str) or not content:
                        continue
                    speak = holdback.feed(content) if holdback is not None else content
                    if speak:
                        last_text = speak
                        yield TextDelta(speak)
        except REQUEST_ERRORS as exc:
            raise transport_error(exc, WHAT, code="llm_error") from None
        calls = native.calls(allowed)
        if holdback is not None:
            tail, held = holdback.finish()
            if tail:
                last_text = tail
                yield TextDelta(tail)
            if held:
                parsed = parse_tool_calls(held, allowed)
                if parsed.rejected:
                    logger.debug("dropped text tool calls to %s: not offered", parsed.rejected)
                text = parsed.text if parsed.had_call_syntax else strip_call_markup(held)
                if text:
                    joiner = "" if not last_text or last_text[-1].isspace() else " "
                    yield TextDelta(joiner + text)
                seen = {(c.name, json.dumps(c.arguments, sort_keys=True)) for c in calls}
                for call in parsed.calls:
                    if (call.name, json.dumps(call.arguments, sort_keys=True)) not in seen:
                        calls.append(call)
        for call in calls:
            yield call

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[Any]:
        """Stream chunks; a server that ignored ``stream: true`` sends one JSON completion."""
        if response.headers.get("content-type", "").startswith("application/json"):
            body = await response.aread()
            decoded = _decode(body.decode("utf-8", "replace"))
            if decoded is not None:
                yield decoded
            return
        async for chunk in _sse_objects(response):
            yield chunk

    async def aclose(self) -> None:
        await self._clients.aclose()


def custom_llm_factory(custom: CustomLLM) -> LLM:
    """The LLM of a stored agent with a custom model (contract §17.3.2). Made per session and
    never closed, so it borrows the event loop's shared HTTP client."""
    return OpenAIChatLLM(
        custom.base_url,
        custom.model,
        api_key=custom.api_key,
        reasoning_effort=custom.reasoning_effort,
        shared_client=True,
    )

"""Fake LLM: echoes the user, calls tools on request (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from vocalis.providers.base import LLMError, LLMEvent, LLMRequest, TextDelta, ToolCallRequest

_CALL = re.compile(r"^call\s+([A-Za-z0-9_-]+)\s*(\{.*\})?\s*$", re.DOTALL)
_FAIL = re.compile(r"^fail\s+(\d{3})$")


SLOW_WORD_SECONDS = 0.1


class FakeLLM:
    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        last = request.messages[-1] if len(request.messages) > 1 else None
        slow = last is not None and last.role == "user" and last.content.startswith("slowly ")
        for event in self._respond(request):
            if slow:
                await asyncio.sleep(SLOW_WORD_SECONDS)
            yield event

    def _respond(self, request: LLMRequest) -> list[LLMEvent]:
        messages = list(request.messages)
        last = messages[-1] if len(messages) > 1 else None
        if last is None:
            return _words("How can I help?")
        if last.role == "system":
            return _words(last.content)
        if last.role == "tool":
            results: list[str] = []
            for msg in reversed(messages):
                if msg.role != "tool":
                    break
                results.insert(0, msg.content)
            return _words("Tool result: " + "; ".join(results) + ".")
        if last.role != "user":
            return _words("How can I help?")
        text = last.content.strip()
        if text == "say nothing":
            return []
        if text.startswith("slowly "):
            return _words(text.removeprefix("slowly "))
        fail = _FAIL.match(text)
        if fail:
            status = int(fail.group(1))
            raise LLMError(
                f"LLM request failed: HTTP {status}",
                retryable=status == 429 or status >= 500,
                status_code=status,
            )
        if any(_CALL.match(line.strip()) for line in text.splitlines()):
            return _script(text)
        return _words(f"You said: {text}")


def _script(text: str) -> list[LLMEvent]:
    """Lines ``call <tool> <json>`` become tool calls, other lines are spoken."""
    events: list[LLMEvent] = []
    for line in text.splitlines():
        call = _CALL.match(line.strip())
        if call is None:
            events.extend(_words(line.strip() + " "))
            continue
        try:
            args = json.loads(call.group(2) or "{}")
        except ValueError:
            args = {}
        events.append(ToolCallRequest(call.group(1), args if isinstance(args, dict) else {}))
    return events


def _words(text: str) -> list[LLMEvent]:
    parts = re.findall(r"\S+\s*", text)
    return [TextDelta(p) for p in parts]

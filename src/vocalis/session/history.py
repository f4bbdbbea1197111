"""Conversation history (§12.3): what the model sees on its next request.

Only heard text enters it: an interrupted reply is stored with its played words. Tool calls live
on the assistant entry that carried them, so each call's result (or ``Pending.``/cancelled
placeholder) is always placed right after its call, as chat-completion APIs require.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vocalis.providers.base import ChatMessage, ToolCallRequest

MAX_CONTEXT_MESSAGES = 200
CANCELLED_RESULT = "Cancelled: the user interrupted before this result was used."
PENDING_RESULT = "Pending."
RESULT_MAX_CHARS = 32_768

CallStatus = Literal["pending", "resolved", "cancelled", "timed_out"]


@dataclass
class ToolCallRecord:
    call_id: str
    name: str
    arguments: dict[str, Any]
    reply_id: str
    item_id: str
    dispatched_at: float  # wall seconds
    execution_mode: Literal["interactive", "hold"] = "interactive"
    server_executed: bool = False
    status: CallStatus = "pending"
    result: str | None = None
    is_error: bool = False
    resolved_at: float | None = None
    response_instructions: dict[str, str] | None = None

    def content_for_model(self) -> str:
        if self.status == "pending":
            return PENDING_RESULT
        if self.status == "cancelled":
            return CANCELLED_RESULT
        text = (self.result or "")[:RESULT_MAX_CHARS]
        hints = self.response_instructions or {}
        if self.status == "timed_out":
            return "Error: the tool did not respond in time. Apologise briefly and carry on." + (
                f"\n{hints['error']}" if "error" in hints else ""
            )
        if self.is_error:
            return f"Error: {text}" + (f"\n{hints['error']}" if "error" in hints else "")
        return text + (f"\n{hints['success']}" if "success" in hints else "")


@dataclass
class Entry:
    role: Literal["user", "system", "assistant"]
    text: str
    item_id: str | None = None
    calls: list[ToolCallRecord] = field(default_factory=list)


class History:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add_user(self, text: str, item_id: str | None = None) -> None:
        self.entries.append(Entry("user", text, item_id))

    def add_system(self, text: str) -> None:
        self.entries.append(Entry("system", text))

    def add_assistant(self, text: str, item_id: str, calls: list[ToolCallRecord]) -> None:
        if text or calls:
            self.entries.append(Entry("assistant", text, item_id, list(calls)))

    def messages(self, system_prompt: str, instructions: str | None = None) -> list[ChatMessage]:
        """The model context: system prompt + the 200 most recent messages (+ one-shot
        instructions as a final system message, never stored)."""
        body: list[ChatMessage] = []
        for entry in self.entries:
            if entry.role != "assistant":
                body.append(ChatMessage(entry.role, entry.text))
                continue
            requests = tuple(ToolCallRequest(c.name, c.arguments, c.call_id) for c in entry.calls)
            body.append(ChatMessage("assistant", entry.text, tool_calls=requests))
            for call in entry.calls:
                body.append(
                    ChatMessage(
                        "tool", call.content_for_model(), tool_call_id=call.call_id, name=call.name
                    )
                )
        body = body[-MAX_CONTEXT_MESSAGES:]
        while body and body[0].role == "tool":  # never start on an orphaned tool result
            body.pop(0)
        out = [ChatMessage("system", system_prompt), *body]
        if instructions:
            out.append(ChatMessage("system", instructions))
        return out


def encode_result(result: Any) -> str:
    """A ``tool.result.result``: strings verbatim, anything else compact JSON (§7.4)."""
    if isinstance(result, str):
        return result
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)

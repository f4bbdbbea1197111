"""Chat Completions wire shapes shared by every OpenAI-style model backend (llama.cpp, vLLM, …)."""

from __future__ import annotations

import json
from typing import Any

from vocalis.providers.base import ChatMessage, LLMRequest


def message_dict(message: ChatMessage) -> dict[str, Any]:
    """One history message in Chat Completions form."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for index, call in enumerate(message.tool_calls)
        ]
    if message.role == "tool":
        data["tool_call_id"] = message.tool_call_id or ""
        if message.name:
            data["name"] = message.name
    return data


def tool_dicts(request: LLMRequest) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }
        for tool in request.tools
    ]

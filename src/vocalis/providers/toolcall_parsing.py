"""Find tool calls in the raw text of a small model, and keep them out of the spoken stream.

Small local models (Qwen2.5-Coder 0.5B) write tool calls in several shapes: inside
``<tool_call>…</tool_call>`` tags as their chat template asks, inside a ```json fence, or as a
bare JSON object. Any of them may be ``{"name": …, "arguments": {…}}`` (arguments possibly a
JSON string), OpenAI's ``{"function": {"name": …, "arguments": …}}``, or a list of those.

Two pieces:

* :func:`parse_tool_calls` turns finished text into calls to *allowed* tools plus the text that
  is left; calls to tools the request did not offer are reported as rejected, never returned.
* :class:`ToolCallHoldback` splits a token stream into text that is safe to speak now and text
  held back because it may be the start of a tool call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from vocalis.providers.base import ToolCallRequest

#: Markers after which the rest of a reply is held back from speech.
CALL_MARKERS = ("<tool_call>", "```", "{")

_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedReply:
    """What a finished model output contained."""

    calls: tuple[ToolCallRequest, ...] = ()
    text: str = ""  # the output with every tool-call span removed
    rejected: tuple[str, ...] = field(default=())  # names of calls to tools not offered

    @property
    def had_call_syntax(self) -> bool:
        return bool(self.calls or self.rejected)


def _call_from(value: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` if ``value`` has the shape of one tool call."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return None
    return name.strip(), arguments


def _calls_in(value: Any) -> list[tuple[str, dict[str, Any]]]:
    items = value if isinstance(value, list) else [value]
    calls = [_call_from(item) for item in items]
    return [call for call in calls if call is not None]


def json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """Every JSON object or array decodable from a ``{``/``[`` in ``text``: (start, end, value)."""
    index = 0
    while True:
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        yield start, end, value
        index = end


def _scan(text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[int, int]]]:
    """Calls found in ``text`` and the spans they occupy, trying tags, fences, then bare JSON."""
    for pattern in (_TAGGED, _FENCED):
        calls: list[tuple[str, dict[str, Any]]] = []
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(text):
            found = [c for _, _, v in json_values(match.group(1)) for c in _calls_in(v)]
            if found:
                calls.extend(found)
                spans.append(match.span())
        if calls:
            return calls, spans
    calls, spans = [], []
    for start, end, value in json_values(text):
        found = _calls_in(value)
        if found:
            calls.extend(found)
            spans.append((start, end))
    return calls, spans


def parse_tool_calls(text: str, allowed: Collection[str]) -> ParsedReply:
    """Tool calls to ``allowed`` tools in ``text``, the remaining text, and rejected names."""
    calls, spans = _scan(text)
    remaining = text
    for start, end in sorted(spans, reverse=True):
        remaining = remaining[:start] + " " + remaining[end:]
    kept = tuple(ToolCallRequest(name=n, arguments=a) for n, a in calls if n in allowed)
    rejected = tuple(n for n, _ in calls if n not in allowed)
    return ParsedReply(calls=kept, text=" ".join(remaining.split()), rejected=rejected)


def strip_call_markup(text: str) -> str:
    """``text`` without JSON values, tool-call tags and code-fence lines (for held text that
    turned out not to be a call, so that only its prose is spoken)."""
    for start, end, _ in sorted(json_values(text), reverse=True):
        text = text[:start] + " " + text[end:]
    text = text.replace("<tool_call>", " ").replace("</tool_call>", " ")
    lines = [line for line in text.splitlines() if not line.strip().startswith("```")]
    return " ".join(" ".join(lines).split())


def _partial_marker_suffix(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a marker."""
    longest = 0
    for marker in CALL_MARKERS:
        for size in range(1, len(marker)):
            if text.endswith(marker[:size]):
                longest = max(longest, size)
    return longest


class ToolCallHoldback:
    """Streams plain text at once; from the first tool-call marker on, holds everything back.

    A trailing fragment that could still grow into a marker (``<tool``, a single backtick) is
    held only until the next delta decides it.
    """

    def __init__(self) -> None:
        self._pending = ""  # undecided tail (a possible marker prefix)
        self._held: list[str] = []
        self.holding = False

    def feed(self, delta: str) -> str:
        """Text from ``delta`` that can be spoken now."""
        if self.holding:
            self._held.append(delta)
            return ""
        text = self._pending + delta
        self._pending = ""
        positions = [i for i in (text.find(m) for m in CALL_MARKERS) if i >= 0]
        if positions:
            cut = min(positions)
            self.holding = True
            self._held.append(text[cut:])
            return text[:cut]
        keep = _partial_marker_suffix(text)
        if keep:
            self._pending = text[-keep:]
            return text[:-keep]
        return text

    def finish(self) -> tuple[str, str]:
        """At the end of the stream: (undecided tail that proved to be text, held text)."""
        tail, self._pending = self._pending, ""
        return tail, "".join(self._held)

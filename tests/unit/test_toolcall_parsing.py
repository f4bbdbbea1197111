"""Tool-call extraction from small-model output, and holding calls back from speech."""

from __future__ import annotations

import pytest

from vocalis.providers.base import ToolCallRequest
from vocalis.providers.toolcall_parsing import (
    ToolCallHoldback,
    parse_tool_calls,
    strip_call_markup,
)

TOOLS = {"get_weather", "set_timer"}
WEATHER = ToolCallRequest("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',  # unclosed tag
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',  # string arguments
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        '  {"name": "get_weather", "arguments": {"city": "Paris"}}  trailing junk',
    ],
)
def test_finds_a_call_in_every_shape(text: str) -> None:
    parsed = parse_tool_calls(text, TOOLS)
    assert parsed.calls == (WEATHER,)
    assert parsed.rejected == ()


def test_keeps_text_around_a_call() -> None:
    text = 'Let me check. {"name": "get_weather", "arguments": {"city": "Paris"}} One moment.'
    parsed = parse_tool_calls(text, TOOLS)
    assert parsed.calls == (WEATHER,)
    assert parsed.text == "Let me check. One moment."


def test_finds_several_calls() -> None:
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "set_timer", "arguments": {"minutes": 5}}</tool_call>'
    )
    parsed = parse_tool_calls(text, TOOLS)
    assert [c.name for c in parsed.calls] == ["get_weather", "set_timer"]
    assert parsed.calls[1].arguments == {"minutes": 5}
    assert parsed.text == ""


def test_never_returns_a_call_to_a_tool_that_was_not_offered() -> None:
    text = '{"name": "add_two", "arguments": {"a": 1}}'
    parsed = parse_tool_calls(text, TOOLS)
    assert parsed.calls == ()
    assert parsed.rejected == ("add_two",)
    assert parsed.had_call_syntax


def test_with_no_tools_offered_every_call_is_rejected() -> None:
    parsed = parse_tool_calls('{"name": "get_weather", "arguments": {}}', ())
    assert parsed.calls == () and parsed.rejected == ("get_weather",)


def test_missing_arguments_mean_no_arguments() -> None:
    assert parse_tool_calls('{"name": "set_timer"}', TOOLS).calls == (
        ToolCallRequest("set_timer", {}),
    )


@pytest.mark.parametrize(
    "text",
    [
        "The weather is nice today.",
        '{"answer": 42}',  # JSON, but not shaped like a call
        '{"name": "get_weather", "arguments": "not json"}',  # unusable arguments
        '{"name": "get_weather", "arguments": [1, 2]}',
        '{"name": "get_weather", "arguments": {"city": "Par',  # cut off
        "Use braces like { this } in code.",
    ],
)
def test_finds_no_call_in_plain_or_broken_text(text: str) -> None:
    parsed = parse_tool_calls(text, TOOLS)
    assert parsed.calls == () and parsed.rejected == ()
    assert not parsed.had_call_syntax


def test_strip_call_markup_leaves_only_prose() -> None:
    text = 'Here it is:\n```json\n{"answer": 42}\n```\nDone.'
    assert strip_call_markup(text) == "Here it is: Done."


def _stream(deltas: list[str]) -> tuple[str, str, str]:
    holdback = ToolCallHoldback()
    spoken = "".join(holdback.feed(d) for d in deltas)
    tail, held = holdback.finish()
    return spoken, tail, held


def test_plain_text_streams_immediately() -> None:
    holdback = ToolCallHoldback()
    assert holdback.feed("Hello") == "Hello"
    assert holdback.feed(" there.") == " there."
    assert holdback.finish() == ("", "")


@pytest.mark.parametrize(
    "deltas",
    [
        ['{"', "name", '": "get_weather"}'],
        ["<tool", "_call", '>{"name": "x"}'],
        ["``", '`json\n{"name": "x"}'],
    ],
)
def test_a_possible_call_is_held_back_from_its_first_character(deltas: list[str]) -> None:
    spoken, tail, held = _stream(deltas)
    assert spoken == "" and tail == ""
    assert held == "".join(deltas)


def test_text_before_a_call_is_spoken_and_the_call_held() -> None:
    spoken, _, held = _stream(["Sure, one moment. ", '{"name"', ': "get_weather"}'])
    assert spoken == "Sure, one moment. "
    assert held == '{"name": "get_weather"}'


def test_a_false_alarm_marker_prefix_is_released() -> None:
    holdback = ToolCallHoldback()
    assert holdback.feed("3 <") == "3 "
    assert holdback.feed(" 5 is true") == "< 5 is true"
    assert holdback.finish() == ("", "")


def test_an_undecided_tail_is_returned_at_the_end() -> None:
    spoken, tail, held = _stream(["It costs 5 `"])
    assert (spoken, tail, held) == ("It costs 5 ", "`", "")

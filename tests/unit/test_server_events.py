"""The typed server events (contract §8): each constructor fills exactly its ``TypedDict``."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import EVENT_FIELDS
from vocalis.protocol import errors
from vocalis.protocol import server_events as ev

CONSTRUCTED: list[tuple[type[Any], Callable[[], Any]]] = [
    (ev.SessionError, lambda: ev.session_error(errors.internal_error(), None)),
    (ev.SessionUpdated, lambda: ev.session_updated({})),
    (ev.SessionReady, lambda: ev.session_ready("sess_x", {}, 1, "tok")),
    (ev.SessionEnded, lambda: ev.session_ended(1.23456, None, "client_end")),
    (ev.SpeechStarted, ev.speech_started),
    (ev.SpeechStopped, ev.speech_stopped),
    (ev.UserTranscriptDelta, lambda: ev.user_transcript_delta("msg_x", "hi")),
    (ev.UserTranscript, lambda: ev.user_transcript("msg_x", "hi")),
    (ev.ReplyStarted, lambda: ev.reply_started("resp_x", "msg_x")),
    (ev.ReplyAudio, lambda: ev.reply_audio("resp_x", "AAAA")),
    (ev.AgentTranscriptDelta, lambda: ev.agent_transcript_delta("r", "m", "hi ", 0, 100)),
    (ev.AgentTranscript, lambda: ev.agent_transcript("r", "m", "hi", False)),
    (ev.ReplyDone, lambda: ev.reply_done("r", "completed")),
    (ev.ToolCall, lambda: ev.tool_call("call_x", "f", {"a": 1}, "r")),
    (ev.ReplyError, lambda: ev.reply_error("r", "llm_error", "m", retryable=True)),
]


def _type_literal(td: type[Any]) -> str:
    literal = typing.get_type_hints(td)["type"]
    (value,) = typing.get_args(literal)
    return str(value)


@pytest.mark.parametrize(("td", "make"), CONSTRUCTED, ids=lambda x: getattr(x, "__name__", ""))
def test_constructor_fills_exactly_its_typed_dict(td: type[Any], make: Callable[[], Any]) -> None:
    event = make()
    assert type(event) is dict  # zero run-time cost: a plain dict on the wire path
    assert set(td.__annotations__) == set(event) | {"timestamp"}
    assert event["type"] == _type_literal(td)


def test_typed_dicts_cover_the_contract() -> None:
    """One ``TypedDict`` per §8 event, with the contract's fields plus ``type``/``timestamp``."""
    members = typing.get_args(ev.ServerEvent)
    by_type = {_type_literal(td): td for td in members}
    assert set(by_type) == set(EVENT_FIELDS)
    assert {td for td, _ in CONSTRUCTED} == set(members)
    for type_, td in by_type.items():
        assert set(td.__annotations__) == EVENT_FIELDS[type_] | {"type", "timestamp"}, type_

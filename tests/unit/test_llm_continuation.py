"""When a stopped generation may be continued from its text (assistant prefill)."""

from __future__ import annotations

import pytest

from vocalis.providers.continuation import may_continue, steps_aside


def test_plain_spoken_text_can_be_continued() -> None:
    assert may_continue("Paris is the capital of France, known", holding=False, calls=False)


@pytest.mark.parametrize(
    ("written", "holding", "calls"),
    [
        ("", False, False),  # nothing written yet: nothing to continue from
        ('{"name": "get_weather", "argu', True, False),  # inside a text tool call
        ("Let me check.", False, True),  # a native tool call is being streamed
        ("Here are some ideas:\n", False, False),  # the template may trim the line break
        ("It is sunny ", False, False),
    ],
)
def test_no_continuation_inside_a_call_or_after_whitespace(
    written: str, holding: bool, calls: bool
) -> None:
    assert not may_continue(written, holding=holding, calls=calls)


def test_a_speaking_reply_steps_aside_once_per_spell_for_a_waiting_reply() -> None:
    base = {
        "continuable": True,
        "first_piece_out": True,
        "replies_waiting": True,
        "stepped_aside_this_spell": False,
    }
    assert steps_aside(**base)
    # any one condition missing: it goes on
    for name, value in [
        ("continuable", False),  # inside a tool call or after whitespace
        ("first_piece_out", False),  # its own caller still waits for the first sound
        ("replies_waiting", False),
        ("stepped_aside_this_spell", True),  # its hold ran out: no second one in this spell
    ]:
        assert not steps_aside(**{**base, name: value})

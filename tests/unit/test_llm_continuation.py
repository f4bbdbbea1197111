"""When a stopped generation may be continued from its text (assistant prefill)."""

from __future__ import annotations

import pytest

from vocalis.providers.continuation import may_continue


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

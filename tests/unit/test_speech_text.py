"""The speech-text normaliser: what TTS is given instead of the model's written reply."""

from __future__ import annotations

import re

import pytest

from vocalis.session.speech_text import (
    number_words,
    ordinal_words,
    speech_text,
    strip_markup,
    year_words,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty-two"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_000, "one million"),
        (2_500_017, "two million five hundred thousand seventeen"),
        (-3, "minus three"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"), (20, "twentieth"),
     (21, "twenty-first"), (100, "one hundredth"), (103, "one hundred third")],
)  # fmt: skip
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1999, "nineteen ninety-nine"), (2005, "two thousand five"), (2024, "twenty twenty-four"),
     (1900, "nineteen hundred"), (1905, "nineteen oh five")],
)  # fmt: skip
def test_year_words(n: int, words: str) -> None:
    assert year_words(n) == words


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("It costs $5.", "It costs five dollars."),
        ("It costs $1.", "It costs one dollar."),
        ("That's $12.50 in total.", "That's twelve dollars and fifty cents in total."),
        ("About €3 million.", "About three million euros."),
        ("£2.01", "two pounds and one penny"),
        ("Growth was 3.5%.", "Growth was three point five percent."),
        ("It's 21°C outside.", "It's twenty-one degrees Celsius outside."),
        ("See you at 10:30.", "See you at ten thirty."),
        ("The train leaves at 9:05 pm.", "The train leaves at nine oh five P M."),
        ("Open until 9:00.", "Open until nine o'clock."),
        ("Come at 7pm", "Come at seven P M"),
        ("It was built in 1999.", "It was built in nineteen ninety-nine."),
        (
            "Since 2024 we have 2024 members.",
            "Since twenty twenty-four we have two thousand twenty-four members.",
        ),
        ("On March 3rd, 2021.", "On March third, twenty twenty-one."),
        ("The 21st floor", "The twenty-first floor"),
        ("Pi is about 3.14", "Pi is about three point one four"),
        ("It was -5 degrees", "It was minus five degrees"),
        ("We sold 1,234 units", "We sold one thousand two hundred thirty-four units"),
        ("Salt & pepper", "Salt and pepper"),
        ("Email me @ home", "Email me at home"),
        ("2 + 2 = 4", "two plus two equals four"),
        ("Ask for table #4", "Ask for table number four"),
        ("Bring fruit, e.g. apples", "Bring fruit, for example apples"),
    ],
)
def test_symbols_and_numbers_are_said_the_way_a_person_would(text: str, said: str) -> None:
    assert speech_text(text) == said


def test_markdown_is_dropped_and_emphasis_kept_as_plain_words() -> None:
    text = "# Weather\n**Sunny** and *warm*, see [the forecast](https://example.com/x) 😀"
    assert speech_text(text) == "Weather. Sunny and warm, see the forecast"


def test_list_items_become_sentences() -> None:
    text = "You can:\n- book a table\n- order food\n1. pay\n2) leave"
    assert speech_text(text) == "You can: book a table. order food. pay. leave"


def test_code_fences_are_not_read_out() -> None:
    text = "Run this:\n```python\nprint('x = 1')\n```\nThen `ls` it."
    assert speech_text(text) == "Run this: Then ls it."


def test_emoji_including_joined_and_flag_sequences_are_removed() -> None:
    assert speech_text("Great job 👍🏽! Family: 👨‍👩‍👧 🇫🇷 ❤️ done") == "Great job! Family: done"


def test_bare_urls_are_said_as_their_site() -> None:
    assert speech_text("Go to https://www.example.com/a/b?c=d now") == "Go to example.com now"


def test_tables_read_as_comma_separated_cells() -> None:
    text = "| day | temp |\n|---|---|\n| Mon | 20 |"
    said = speech_text(text)
    assert "---" not in said and "|" not in said
    assert "Mon, twenty" in said


def test_plain_sentence_is_unchanged() -> None:
    text = "Sure, I booked a table for you. Anything else?"
    assert speech_text(text) == text
    assert strip_markup(text) == text


# ----------------------------------------------------------------------------- properties
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_MARKUP = st.sampled_from(["**", "*", "`", "# ", "- ", "1. ", "```", "~~", "> ", "$", "%", "&"])
_WORDS = st.sampled_from(["table", "for", "two", "at", "the", "café", "Paris", ",", ".", "\n"])
_NUMBERS = st.integers(min_value=-(10**12), max_value=10**12).map(str)
_TEXT = st.lists(st.one_of(_MARKUP, _WORDS, _NUMBERS), max_size=30).map(" ".join)


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_every_number_is_spelled_in_plain_words(n: int) -> None:
    assert re.fullmatch(r"[a-z]+(?:[ -][a-z]+)*", number_words(n))


@given(_TEXT)
def test_no_digits_or_markup_reach_the_voice(text: str) -> None:
    said = speech_text(text)
    assert not re.search(r"[0-9*`#$%&~|]", said), said
    assert "  " not in said and said == said.strip()


@given(_TEXT)
def test_normalising_twice_changes_nothing(text: str) -> None:
    once = speech_text(text)
    assert speech_text(once) == once

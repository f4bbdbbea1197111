"""Sentence cutting and word timing for speech."""

from __future__ import annotations

import itertools

from vocalis.session.text import SentenceSplitter, has_non_backchannel_word, has_word, time_words
from vocalis.settings import DEFAULT_BACKCHANNEL_WORDS


def cut(text: str) -> list[str]:
    splitter = SentenceSplitter()
    out: list[str] = []
    for token in text.split(" "):
        out += splitter.push(token + " ")
    rest = splitter.flush()
    return [*out, rest] if rest else out


def test_pieces_concatenate_to_the_text_without_trailing_space() -> None:
    text = "Hi! How are you today? I am fine."
    pieces = cut(text)
    assert "".join(pieces) == text
    assert pieces == ["Hi! ", "How are you today? ", "I am fine."]


def test_first_piece_is_cut_early_at_a_comma_or_after_six_words() -> None:
    # one word is too short a piece to say alone: "Well, " waits for more
    assert cut("Well, that is a really good question, and I think so.")[0] == (
        "Well, that is a really good "
    )
    assert cut("I'm sorry, but I can't assist with that request.")[0] == "I'm sorry, "
    long_first = "The absence of the detailed reference to the Hebrews is therefore no reason."
    assert cut(long_first)[0] == "The absence of the detailed reference "


def test_a_waiting_caller_gets_a_shorter_first_piece() -> None:
    splitter = SentenceSplitter()
    tokens = ["The", "absence", "of", "the", "detailed", "reference", "to", "the", "Hebrews"]
    pieces = [p for t in tokens[:4] for p in splitter.push(t + " ")]
    assert pieces == []  # prepared during the pause: waits for a more natural cut
    # the turn is committed: the caller waits, and three words are enough
    assert splitter.push(tokens[4] + " ", waiting=True) == ["The absence of "]
    # only the first piece is cut short
    later = [p for t in tokens[5:] for p in splitter.push(t + " ", waiting=True)]
    assert later == []


def test_a_title_does_not_end_a_sentence() -> None:
    assert cut("I met Mr. Hale today. Dr. Smith was there too.") == [
        "I met Mr. Hale today. ",
        "Dr. Smith was there too.",
    ]


def test_later_sentences_are_not_cut_at_commas() -> None:
    pieces = cut("Sure. Then, after that, we go home.")
    assert pieces == ["Sure. ", "Then, after that, we go home."]


def test_a_later_piece_is_cut_early_when_the_listener_is_about_to_run_dry() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Sure. ") == []
    assert splitter.push("I can ") == ["Sure. "]
    low = SentenceSplitter.LOW_RUNWAY_MS - 1
    # plenty of audio still to hear: the sentence is finished first
    assert splitter.push("book a table, ", runway_ms=3000) == []
    # a one-word piece would be said as a sentence of its own
    assert SentenceSplitter().push("Well ", runway_ms=0) == []
    # little left: what is written goes now, up to its last comma
    assert splitter.push("for two ", runway_ms=low) == ["I can book a table, "]
    assert splitter.push("people at eight. ", runway_ms=2000) == []
    # no comma: every complete word (the last one may still be growing)
    assert splitter.push("Would you ", runway_ms=2000) == ["for two people at eight. "]
    assert splitter.push("like a window seat?", runway_ms=low) == ["Would you like a window "]
    assert splitter.flush() == "seat?"


def test_word_timings_cover_the_audio_in_order() -> None:
    words = time_words("Hi! How can I help? ", 1000, 950)
    assert [w.text for w in words] == ["Hi! ", "How ", "can ", "I ", "help? "]
    assert words[0].start_ms == 1000 and words[-1].end_ms == 1950
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(words))


def test_backchannels() -> None:
    words = DEFAULT_BACKCHANNEL_WORDS
    assert not has_non_backchannel_word("Uh-huh.", words)
    assert not has_non_backchannel_word("mm hmm, right", words)
    assert has_non_backchannel_word("wait", words)
    assert has_non_backchannel_word("okay but wait", words)


def test_fillers_do_not_interrupt() -> None:
    words = DEFAULT_BACKCHANNEL_WORDS
    assert not has_non_backchannel_word("Uh", words)
    assert not has_non_backchannel_word("Uh-uh.", words)
    assert not has_non_backchannel_word("um, uh huh", words)
    assert has_non_backchannel_word("uh, wait", words)
    assert has_word("Uh... um")  # recognised, so the no-word rule does not apply
    assert not has_word("...")

"""The combined end-of-turn rule (§11.3): text endings, the audio's say, silence deadlines."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vocalis.session.end_of_turn import (
    Ending,
    Entity,
    Expect,
    Policy,
    Verdict,
    deadline_ms,
    judge,
    text_ending,
    turn_ends,
)


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to book a table and",
        "Send it to the",
        "My number is, um",
        "Could you check the weather for",
        "Abandoned indeed by God and",
        "It was the best of...",
        "I think we should go to the sh-",
        "and the valley of the…",
        "The flight leaves at 6 and.",  # a recogniser's stray full stop does not close it
    ],
)
def test_text_that_continues_is_incomplete_whatever_the_audio_says(text: str) -> None:
    assert text_ending(text)[0] is Ending.CONTINUES
    assert judge(0.99, text).verdict is Verdict.INCOMPLETE
    assert judge(None, text).verdict is Verdict.INCOMPLETE


@pytest.mark.parametrize(
    "text",
    [
        "What's the weather in Paris?",
        "He turned sharply and faced Gregson across the table.",
        "Book it for eight!",
        "Where are you from?",  # a question mark closes even a leaning word
    ],
)
def test_finished_sentence_is_complete_even_when_the_audio_doubts_it(text: str) -> None:
    assert text_ending(text)[0] is Ending.FINAL
    assert judge(0.3, text).verdict is Verdict.COMPLETE
    assert judge(0.9, text).verdict is Verdict.COMPLETE


def test_leaning_word_closed_by_a_full_stop_is_left_to_the_audio() -> None:
    assert text_ending("Turn it on.")[0] is Ending.LEANS_ON
    assert judge(0.9, "Turn it on.").verdict is Verdict.COMPLETE
    # doubtful audio: wait part of the way, not until max_silence ("heard him hard by.")
    assert judge(0.2, "Turn it on.").verdict is Verdict.UNSURE
    assert judge(0.2, "Turn it on,").verdict is Verdict.INCOMPLETE
    assert text_ending("Turn it on")[0] is Ending.CONTINUES


def test_her_and_his_end_sentences_as_pronouns() -> None:
    # "the worst of her." was held to max_silence as if "her" were only a determiner
    assert text_ending("You have seen but the worst of her.")[0] is Ending.LEANS_ON
    assert judge(0.02, "You have seen but the worst of her.").verdict is Verdict.UNSURE
    assert text_ending("I gave her")[0] is Ending.CONTINUES


def test_full_stop_text_is_complete_at_low_audio_probability() -> None:
    # The issue: read sentences judged incomplete by the audio model alone.
    assert judge(0.1, "A book could be written about this restaurant.").verdict is Verdict.COMPLETE


@given(
    words=st.lists(
        st.sampled_from(["book", "a", "table", "for", "two", "in", "so", "it"]), min_size=1
    ),
    mark=st.sampled_from([".", "?", "!"]),
    prob=st.one_of(st.none(), st.floats(0.0, 1.0)),
    veto=st.floats(0.0, 1.0),
)
def test_a_closed_sentence_is_never_judged_incomplete(
    words: list[str], mark: str, prob: float | None, veto: float
) -> None:
    """The turn taker prepares the reply to FINAL text before the turn model answers."""
    text = " ".join(words) + mark
    assume(text_ending(text)[0] is Ending.FINAL)
    verdict = judge(prob, text, policy=Policy(final_veto_prob=veto)).verdict
    assert verdict is not Verdict.INCOMPLETE


def test_audio_that_is_very_sure_makes_a_full_stop_unsure_not_complete() -> None:
    judgement = judge(0.01, "Somehow or other.")
    assert judgement.verdict is Verdict.UNSURE
    assert "audio" in judgement.reason


def test_leaning_text_is_decided_by_the_audio() -> None:
    text = "I was thinking about it, maybe"  # no final punctuation, ends on a leaning word
    assert text_ending("My name is John,")[0] is Ending.LEANS_ON
    assert judge(0.9, "My name is John,").verdict is Verdict.COMPLETE
    assert judge(0.6, "My name is John,").verdict is Verdict.UNSURE
    assert judge(0.2, "My name is John,").verdict is Verdict.INCOMPLETE
    assert judge(None, "My name is John,").verdict is Verdict.UNSURE
    assert text_ending(text)[0] is Ending.CONTINUES


def test_no_final_punctuation_leans_on_the_audio_but_never_completes_the_turn() -> None:
    assert text_ending("and I heard him hard by the door")[0] is Ending.LEANS_ON
    # a punctuating recogniser left the sentence open: however sure the audio, wait a while
    assert judge(0.95, "He who recited the f").verdict is Verdict.UNSURE
    assert judge(0.6, "yes I can hear you").verdict is Verdict.UNSURE
    assert judge(0.1, "yes I can hear you").verdict is Verdict.INCOMPLETE
    # the same words, closed by the recogniser, end the turn on the audio's word
    assert judge(0.95, "yes I can hear you,").verdict is Verdict.COMPLETE
    # a recogniser that never punctuates: the audio decides alone
    bare = Policy(bare_text_can_complete=True)
    assert judge(0.95, "yes I can hear you", policy=bare).verdict is Verdict.COMPLETE


def test_empty_transcript_is_complete() -> None:
    assert judge(0.0, "  ").verdict is Verdict.COMPLETE
    assert judge(None, "...").verdict is Verdict.COMPLETE


def test_no_turn_model_uses_the_text_alone() -> None:
    assert judge(None, "Thanks, that's all.").verdict is Verdict.COMPLETE


@pytest.mark.parametrize(
    ("text", "expect", "verdict"),
    [
        ("my account number is 4 4 7", Expect(Entity.DIGITS, digits=6), Verdict.INCOMPLETE),
        ("my account number is 447 921.", Expect(Entity.DIGITS, digits=6), Verdict.COMPLETE),
        ("it's four oh two.", Expect(Entity.DIGITS, digits=6), Verdict.INCOMPLETE),
        ("call me on 555 12.", Expect(Entity.PHONE), Verdict.INCOMPLETE),
        ("call me on 555 1234.", Expect(Entity.PHONE), Verdict.COMPLETE),
        ("it's john at gmail.", Expect(Entity.EMAIL), Verdict.INCOMPLETE),
        ("it's john at gmail dot", Expect(Entity.EMAIL), Verdict.INCOMPLETE),
        ("it's john@gmail.com.", Expect(Entity.EMAIL), Verdict.COMPLETE),
        ("it's john at gmail dot com.", Expect(Entity.EMAIL), Verdict.COMPLETE),
        ("on March.", Expect(Entity.DATE), Verdict.INCOMPLETE),
        ("on March the third.", Expect(Entity.DATE), Verdict.COMPLETE),
    ],
)
def test_entities_a_tool_expects(text: str, expect: Expect, verdict: Verdict) -> None:
    assert judge(0.95, text, [expect]).verdict is verdict


def test_entity_rules_apply_only_when_the_entity_is_expected() -> None:
    assert judge(0.95, "it's four oh two.").verdict is Verdict.COMPLETE
    assert judge(0.95, "on March.").verdict is Verdict.COMPLETE


def test_digits_without_a_known_length_lean_on_the_audio() -> None:
    expect = [Expect(Entity.DIGITS)]
    assert text_ending("the code is 4 4 7.", expect)[0] is Ending.LEANS_ON
    assert judge(0.3, "the code is 4 4 7.", expect).verdict is Verdict.INCOMPLETE


def test_deadlines_follow_the_verdict_in_both_modes() -> None:
    for lo, hi in ((800, 2500), (500, 1500)):
        assert deadline_ms(Verdict.COMPLETE, lo, hi) == lo
        assert deadline_ms(Verdict.INCOMPLETE, lo, hi) == hi
        assert lo < deadline_ms(Verdict.UNSURE, lo, hi) < hi
    assert deadline_ms(Verdict.UNSURE, 800, 2500, Policy(unsure_fraction=1.0)) == 2500


def test_an_unsure_turn_outwaits_a_thinking_pause_in_every_mode() -> None:
    """Halfway to max_silence is only 1.0 s in min_latency: a 1.2 s pause after "the" was cut
    off there. UNSURE waits at least the floor, never past max_silence."""
    assert deadline_ms(Verdict.UNSURE, 800, 2500) == 1650  # balanced: halfway, above the floor
    assert deadline_ms(Verdict.UNSURE, 500, 1500) == 1300  # min_latency: the floor
    assert deadline_ms(Verdict.UNSURE, 500, 1500, Policy(unsure_floor_ms=0)) == 1000
    assert deadline_ms(Verdict.UNSURE, 300, 1000) == 1000  # a client's max_silence still ends it
    assert deadline_ms(Verdict.COMPLETE, 500, 1500) == 500  # a complete turn does not wait
    # a max below min (explicit client values) never ends a turn before min_silence
    assert deadline_ms(Verdict.INCOMPLETE, 800, 500) == 800


def test_turn_ends_only_once_the_deadline_has_passed() -> None:
    judgement = judge(0.99, "Book a table for")
    assert not turn_ends(judgement, 800, 800, 2500)
    assert not turn_ends(judgement, 2499, 800, 2500)
    assert turn_ends(judgement, 2500, 800, 2500)
    done = judge(0.99, "Book a table for two.")
    assert not turn_ends(done, 799, 800, 2500)
    assert turn_ends(done, 800, 800, 2500)


def test_entities_are_read_from_tool_schemas() -> None:
    from vocalis.session.end_of_turn import expected_entities

    schemas = [
        {"type": "object", "properties": {"city": {"type": "string"}}},
        {
            "type": "object",
            "properties": {
                "contact_email": {"type": "string"},
                "when": {"type": "string", "format": "date"},
                "order": {"type": "string", "pattern": "^\\d{6}$"},
                "mobile_number": {"type": "string"},
            },
        },
    ]
    assert set(expected_entities(schemas)) == {
        Expect(Entity.EMAIL),
        Expect(Entity.DATE),
        Expect(Entity.DIGITS, digits=6),
        Expect(Entity.PHONE),
    }
    assert expected_entities([{"type": "object", "properties": {"city": {}}}]) == ()

"""The turn-taking core driven directly: scripted timelines, plain calls, no event loop.

Each test scripts what the user does (speech and silence, in ms of 16 kHz audio), what the
recogniser and the turn model answer, and what the agent is doing, and checks the actions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import pytest

from vocalis.providers.base import Transcript
from vocalis.session.end_of_turn import Entity, Expect
from vocalis.session.turn_actions import (
    Action,
    BargeIn,
    CancelFinal,
    CancelVerdict,
    CommitTurn,
    DropCandidate,
    DropSpeculation,
    Floor,
    PauseReply,
    Speculate,
    TurnOpened,
    UserPartial,
    WantCandidatePartial,
    WantFinal,
    WantPartial,
    WantVerdict,
)
from vocalis.session.turns import (
    PREROLL_MS,
    QUIET_DB,
    SPECULATE_MS,
    VERDICT_MS,
    TurnRules,
    TurnTaker,
    samples,
)

A = TypeVar("A")
FRAME = 512  # 32 ms, Silero's frame
RULES = TurnRules(
    vad_threshold=0.5,
    min_silence_ms=600,
    max_silence_ms=2000,
    speech_start_ms=100,
    interruption_delay_ms=200,
    backchannel_window_ms=800,
    backchannel_words=("mhm", "uh huh", "yeah", "okay", "right"),
)


class Script:
    """A user on a timeline; ``actions`` collects everything the turn taker decided."""

    def __init__(self, rules: TurnRules = RULES, floor: Floor = Floor.IDLE) -> None:
        counter = itertools.count(1)
        self.taker = TurnTaker(rules, lambda: f"item_{next(counter)}")
        self.floor = floor
        self.sample = 0
        self.actions: list[Action] = []

    @property
    def wall(self) -> float:
        return 1000.0 + self.sample / 16_000

    def _frames(self, ms: int, prob: float, level: float | None = None) -> list[Action]:
        got: list[Action] = []
        for _ in range(samples(ms) // FRAME):
            start = self.sample
            self.sample += FRAME
            got += self.taker.frame(prob, start, self.sample, self.wall, self.floor, level)
        self.actions += got
        return got

    def speak(self, ms: int, level: float | None = None) -> list[Action]:
        return self._frames(ms, 0.9, level)

    def pause(self, ms: int) -> list[Action]:
        return self._frames(ms, 0.05)

    def final(self, text: str) -> list[Action]:
        want = self.last(WantFinal)
        got = self.taker.final_heard(want.item_id, Transcript(text), self.wall)
        self.actions += got
        return got

    def verdict(self, probability: float | None) -> list[Action]:
        want = self.last(WantVerdict)
        got = self.taker.verdict_heard(want.item_id, probability, self.wall)
        self.actions += got
        return got

    def candidate(self, text: str) -> list[Action]:
        want = self.last(WantCandidatePartial)
        got = self.taker.candidate_heard(want.candidate, text, want.at, self.wall, self.floor)
        self.actions += got
        return got

    def last(self, kind: type[A]) -> A:
        found = [a for a in self.actions if isinstance(a, kind)]
        assert found, f"no {kind.__name__} in {self.actions}"
        return found[-1]

    def of(self, kind: type[object]) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]


# ------------------------------------------------------------------------------ user turns
def test_speech_shorter_than_speech_start_opens_no_turn() -> None:
    s = Script()
    s.speak(64)
    s.pause(1500)
    assert s.actions == []
    assert not s.taker.turn_open


def test_a_turn_opens_after_speech_start_and_announces_itself() -> None:
    s = Script()
    s.pause(320)
    got = s.speak(160)
    assert got[0] == TurnOpened("item_1", announce=True)
    # the turn's audio starts at the speech start minus the pre-roll
    assert s.last(WantPartial).start == samples(320) - samples(PREROLL_MS)


def test_partials_back_off_with_their_decode_cost() -> None:
    s = Script()
    s.speak(400)
    first = s.last(WantPartial)
    s.speak(2000)
    assert len(s.of(WantPartial)) == 1  # one decode at a time
    assert s.taker.partial_heard(first.item_id, "hello", cost_seconds=0.05) == [
        UserPartial("item_1", "hello")
    ]
    s.speak(400)
    assert len(s.of(WantPartial)) == 2  # cheap decodes: every 320 ms
    s.taker.partial_heard(first.item_id, "hello", cost_seconds=1.5)  # average: 0.76 s
    s.speak(1000)
    assert len(s.of(WantPartial)) == 2  # expensive ones: not before 2 x the cost (1.5 s)
    s.speak(300)
    assert len(s.of(WantPartial)) == 3


def test_same_partial_text_is_not_repeated() -> None:
    s = Script()
    s.speak(400)
    item = s.last(WantPartial).item_id
    assert s.taker.partial_heard(item, "hi", 0.0) == [UserPartial(item, "hi")]
    s.speak(400)
    assert s.taker.partial_heard(item, "hi ", 0.0) == []


def test_final_and_verdict_are_requested_early_in_the_pause() -> None:
    s = Script()
    s.speak(800)
    end = s.sample
    assert not s.of(WantFinal)
    s.pause(160)
    final = s.last(WantFinal)
    # the speech and the pause so far: a last word the VAD called silence is not cut off
    assert samples(SPECULATE_MS) <= final.end - end < samples(SPECULATE_MS) + FRAME
    assert not s.of(WantVerdict)
    s.pause(64)
    verdict = s.last(WantVerdict)  # the turn model hears the pause too, as it was trained
    assert verdict.end - end >= samples(VERDICT_MS)
    assert not s.of(CommitTurn)


def _paused(rules: TurnRules = RULES) -> Script:
    s = Script(rules)
    s.speak(800)
    s.pause(224)
    return s


def test_complete_turn_commits_at_min_silence_with_a_prepared_reply() -> None:
    s = _paused()
    # a closed sentence: its reply is prepared before the turn model answers, once
    # commit expected at min_silence: 600 ms, 224 of them gone
    assert s.final("What time is it?") == [Speculate("What time is it?", 376)]
    assert s.verdict(0.9) == []
    s.pause(320)
    assert not s.of(CommitTurn)
    s.pause(96)
    commit = s.last(CommitTurn)
    assert commit.transcript.text == "What time is it?"
    assert commit.ended_wall - commit.speech_end_wall >= 0.6
    assert not s.taker.turn_open


def test_a_finished_sentence_ends_the_turn_though_the_audio_doubts_it() -> None:
    s = _paused()
    s.final("Book a table for two.")
    s.verdict(0.3)  # Smart Turn misjudges many read sentences; the words say they are done
    s.pause(400)
    assert s.of(CommitTurn)


def test_words_that_cannot_end_a_sentence_wait_for_max_silence() -> None:
    s = _paused()
    s.verdict(0.95)
    assert s.final("I would like to") == []  # no reply prepared either
    s.pause(1700)
    assert not s.of(CommitTurn)
    s.pause(200)
    assert s.last(CommitTurn).transcript.text == "I would like to"


def test_text_left_to_the_audio_is_prepared_only_once_the_turn_model_answers() -> None:
    s = _paused()
    assert s.final("Turn it on") == []  # may continue: the audio decides
    assert s.verdict(0.4) == []  # it did: incomplete, no reply prepared
    s = _paused()
    assert s.verdict(0.9) == []
    assert s.final("What time is it?") == [Speculate("What time is it?", 376)]  # both known


def test_speech_after_an_early_reply_drops_it_and_a_new_pause_prepares_again() -> None:
    s = _paused()
    s.final("Book a table.")
    got = s.speak(200)
    assert DropSpeculation() in got
    s.pause(224)
    assert s.final("Book a table for two.") == [Speculate("Book a table for two.", 376)]


def test_an_unsure_turn_waits_part_of_the_way_to_max_silence() -> None:
    s = _paused()
    s.final("I need a taxi,")
    # ready in case it is over; due at the unsure floor, 1.3 s
    assert s.verdict(0.6) == [Speculate("I need a taxi,", 1300 - 224)]
    s.pause(1000)  # 1.22 s of silence: past min_silence, before 1.3 s
    assert not s.of(CommitTurn)
    s.pause(128)
    assert s.of(CommitTurn)


def test_a_digit_string_the_tools_expect_is_waited_for() -> None:
    rules = replace(RULES, expected=(Expect(Entity.DIGITS, digits=6),))
    s = _paused(rules)
    s.final("My code is 4 4 7.")
    s.verdict(0.9)
    s.pause(1700)
    assert not s.of(CommitTurn) and not s.of(Speculate)


def test_a_failing_turn_model_leaves_the_decision_to_the_words() -> None:
    s = _paused()
    s.final("That's all.")
    s.verdict(None)
    s.pause(400)
    assert s.last(CommitTurn).transcript.text == "That's all."  # complete: min_silence
    s = _paused()
    s.final("I need a taxi,")
    assert s.verdict(None) == [Speculate("I need a taxi,", 1076)]  # unsure


def test_server_vad_asks_no_turn_model_and_commits_at_min_silence() -> None:
    s = _paused(replace(RULES, semantic=False))
    assert not s.of(WantVerdict)
    s.final("I would like to")
    s.pause(400)
    assert s.of(CommitTurn)


def test_pause_while_deciding_commits_when_the_answers_arrive() -> None:
    """Min silence passed while the decodes were still running: commit at their arrival."""
    s = Script()
    s.speak(800)
    s.pause(1000)
    assert not s.of(CommitTurn)
    s.verdict(0.8)
    got = s.final("Book a table.")
    assert isinstance(got[-1], CommitTurn)


def test_empty_transcript_needs_no_verdict_and_commits_without_a_reply() -> None:
    s = Script()
    s.speak(800)
    s.pause(160)
    assert s.final("") == []
    s.pause(500)
    assert s.last(CommitTurn).transcript.text == ""


def test_speech_resuming_in_the_pause_cancels_the_decision() -> None:
    s = _paused()
    final, verdict = s.last(WantFinal), s.last(WantVerdict)
    got = s.speak(64)
    assert CancelFinal(final.item_id) in got and CancelVerdict(verdict.item_id) in got
    assert DropSpeculation() in got
    # late answers of the cancelled calls change nothing
    assert s.taker.final_heard(final.item_id, Transcript("stale"), s.wall) == []
    assert s.taker.verdict_heard(verdict.item_id, 1.0, s.wall) == []
    s.pause(224)
    assert len(s.of(WantFinal)) == 2 and len(s.of(WantVerdict)) == 2
    s.final("Stale no more.")
    s.verdict(0.9)
    s.pause(600)
    assert s.last(CommitTurn).transcript.text == "Stale no more."


def test_speech_after_a_complete_verdict_drops_the_prepared_reply() -> None:
    s = _paused()
    s.final("Yes.")
    s.verdict(0.9)
    got = s.speak(96)
    assert DropSpeculation() in got
    assert not any(isinstance(a, CancelFinal | CancelVerdict) for a in got)  # none in flight


def test_detach_hands_back_the_open_turn() -> None:
    s = Script()
    s.speak(800)
    actions, turn = s.taker.detach()
    assert actions == []  # no candidate to drop
    assert turn is not None and turn.item_id == "item_1" and turn.end == s.sample
    assert not s.taker.turn_open


# ------------------------------------------------------------------------------ barge-in
def _over_agent(floor: Floor = Floor.SPEAKING) -> Script:
    s = Script(floor=floor)
    s.pause(320)
    s.taker.agent_audible(s.sample)
    return s


def test_speech_over_the_agent_pauses_it_after_the_interruption_delay() -> None:
    s = _over_agent()
    s.speak(160)
    assert not s.of(PauseReply) and not s.of(TurnOpened)
    s.speak(64)
    assert s.of(PauseReply) and s.of(WantCandidatePartial)
    assert not s.taker.turn_open


def test_interruption_delay_counts_from_when_the_agent_became_audible() -> None:
    s = Script(floor=Floor.SPEAKING)
    s.speak(64)  # the user was already speaking
    s.taker.agent_audible(s.sample)
    s.speak(160)
    assert not s.of(PauseReply)
    s.speak(64)
    assert s.of(PauseReply)


def test_a_real_word_barges_in_and_opens_the_turn_where_speech_began() -> None:
    s = _over_agent()
    start = s.sample
    s.speak(256)
    got = s.candidate("wait a second")
    assert got[:3] == [DropCandidate(resume=False), BargeIn(), TurnOpened("item_1", False)]
    assert got[3] == UserPartial("item_1", "wait a second")
    assert s.taker.turn_open
    s.floor = Floor.IDLE
    s.speak(64)
    assert s.last(WantPartial).start == start - samples(PREROLL_MS)


def test_a_backchannel_does_not_interrupt_and_the_reply_resumes() -> None:
    s = _over_agent()
    s.speak(256)
    assert s.candidate("mhm") == []
    s.speak(64)
    s.pause(200)
    assert s.last(DropCandidate) == DropCandidate(resume=True)
    assert not s.of(BargeIn) and not s.taker.busy


def test_a_short_phrase_ending_before_its_transcript_still_interrupts() -> None:
    s = _over_agent()
    s.speak(256)
    s.pause(300)
    assert not s.of(DropCandidate)  # waits for the words being recognised
    assert BargeIn() in s.candidate("stop")


def test_a_short_backchannel_ending_before_its_transcript_lets_the_reply_resume() -> None:
    s = _over_agent()
    s.speak(256)
    s.pause(300)
    assert s.candidate("uh huh") == [DropCandidate(resume=True)]


def test_wordless_speech_interrupts_once_heard_for_the_backchannel_window() -> None:
    s = _over_agent()
    origin = s.sample
    s.speak(256)
    covered: list[int] = []
    while not s.of(BargeIn):
        assert len(covered) < 20
        covered.append((s.last(WantCandidatePartial).at - origin) * 1000 // 16_000)
        s.candidate("")
        s.speak(200)
    # judged on a transcript covering the window, not on the speech's length alone
    assert covered[-1] >= RULES.backchannel_window_ms
    assert all(c < RULES.backchannel_window_ms for c in covered[:-1])


def test_an_uninterruptible_reply_is_not_paused_and_opens_no_turn() -> None:
    s = _over_agent(Floor.SPEAKING_UNINTERRUPTIBLE)
    s.speak(2000)
    assert s.actions == []


def test_a_reply_that_is_not_audible_yet_is_preempted_by_a_new_turn() -> None:
    s = Script(floor=Floor.PREPARING)
    s.speak(160)
    assert s.of(TurnOpened) and not s.of(PauseReply)


def test_the_reply_ending_drops_the_candidate_without_resuming() -> None:
    s = _over_agent()
    s.speak(256)
    assert s.taker.agent_done(s.sample) == [DropCandidate(resume=False)]
    assert not s.taker.busy


# ----------------------------------------------------------------- the pause's start
LOUD = 0.1
FADED = LOUD * 10 ** (-(QUIET_DB + 5) / 20)  # still "speech" to the VAD, no longer voiced
QUIET_BACKDATE_MS = 192


def _faded_turn(fade_ms: int, backdate_ms: int = QUIET_BACKDATE_MS) -> Script:
    s = Script(replace(RULES, semantic=False, quiet_backdate_ms=backdate_ms))
    s.speak(800, LOUD)
    s.speak(fade_ms, FADED)  # the VAD hears a fading word as speech
    return s


def test_the_pause_is_timed_from_where_the_voice_went_quiet() -> None:
    s = _faded_turn(128)
    s.pause(224)
    s.final("Book a table for two.")
    s.pause(224)  # 448 ms after the VAD's edge, 576 ms after the voice
    assert not s.of(CommitTurn)
    s.pause(32)  # 608 ms of quiet: min_silence (600) passed, though the VAD heard 480 ms
    assert s.of(CommitTurn)


def test_the_pause_starts_at_most_a_bounded_time_before_the_vad_edge() -> None:
    """A long soft tail (breath, a trailing murmur) is not all counted as silence."""
    s = _faded_turn(640)
    s.pause(224)
    s.final("Book a table for two.")
    s.pause(600 - QUIET_BACKDATE_MS - 224 - 32)
    assert not s.of(CommitTurn)
    s.pause(64)
    assert s.of(CommitTurn)


def _unleveled_turn() -> Script:
    s = Script(replace(RULES, semantic=False, quiet_backdate_ms=QUIET_BACKDATE_MS))
    s.speak(800)
    s.speak(128)
    return s


@pytest.mark.parametrize(
    "turn",
    [lambda: _faded_turn(128, backdate_ms=0), _unleveled_turn],
    ids=["backdating off (the default)", "no levels known"],
)
def test_otherwise_the_vad_edge_times_the_pause(turn: Callable[[], Script]) -> None:
    s = turn()
    s.pause(224)
    s.final("Book a table for two.")
    s.pause(352)  # 576 ms after the VAD's edge
    assert not s.of(CommitTurn)
    s.pause(32)
    assert s.of(CommitTurn)

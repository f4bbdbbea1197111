"""Turn-taking and barge-in as a pure state machine (contract §10.2–§11.5).

:class:`TurnTaker` is the Sans-I/O core of listening, in the style of python-websockets'
``protocol.py``: it is fed VAD frames, transcripts and turn-model verdicts, each stamped with the
time it happened, and answers with *actions* for its shell to carry out (start a decode, pause the
reply, commit the turn…). It awaits nothing, starts no task and reads no clock, so every rule
here is tested as plain function calls on a scripted timeline.

Time is the input-audio timeline: absolute 16 kHz sample indexes. Speech is a run of frames at or
above the VAD threshold; a non-speech gap longer than :data:`SPEECH_GAP_MS` ends the run. With the
agent silent, a run of ``speech_start_ms`` opens a user turn. Once a pause begins the final
transcript of the speech is requested, and a little later the turn model's probability on the
audio with the pause (``semantic_vad``); :func:`~vocalis.session.end_of_turn.judge` combines the
two into a verdict whose deadline ends the turn: ``min_silence`` when complete, ``max_silence``
when incomplete, in between when unsure. A turn that is not judged incomplete gets its reply
prepared at once, behind a gate (``Speculate``), so it is ready at the commit.
While the agent speaks, speech is a barge-in *candidate*: the reply pauses once
``interruption_delay_ms`` of it holds and is interrupted when a word that is not a backchannel is
recognised (or no word at all after ``backchannel_window_ms``); a candidate that ends without one
lets the reply resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vocalis.providers.base import INPUT_RATE, Transcript
from vocalis.session.end_of_turn import (
    DEFAULT_POLICY,
    Ending,
    Expect,
    Judgement,
    Policy,
    Verdict,
    deadline_ms,
    judge,
    text_ending,
)
from vocalis.session.text import has_non_backchannel_word, has_word
from vocalis.session.turn_actions import (
    Action,
    BargeIn,
    CancelFinal,
    CancelVerdict,
    CommitTurn,
    DropCandidate,
    DropSpeculation,
    Floor,
    OpenTurn,
    PauseReply,
    Speculate,
    TurnOpened,
    UserPartial,
    WantCandidatePartial,
    WantFinal,
    WantPartial,
    WantVerdict,
)

PREROLL_MS = 300  # audio before the detected speech start given to the recogniser (§11.1)
SPEECH_GAP_MS = 100  # a longer non-speech gap ends "continuous speech" (§11.1)
# Request the final decode (and a preemptive reply) this long into a pause. Measured and not
# done: 64 ms (the reply starts 64 ms sooner): bench_turns the same day on the same host,
# hesitations kept 96.2 -> 93.8 % balanced and 92.3 -> 88.5 % min_latency, finished sentences
# unchanged (88.9 %): a final that hears less of the pause is closed with a full stop more
# often, mid-sentence too.
SPECULATE_MS = 128
VERDICT_MS = 200  # ask the turn model this long into a pause, the pause included (as trained)
PARTIAL_EVERY_MS = 320  # re-decode the growing turn for partials at most this often
CANDIDATE_PARTIAL_EVERY_MS = 160  # a barge-in candidate is re-decoded twice as often
# Partial decodes take at most about this share of the CPU. The measured cost includes the wait
# in the shared recogniser's queue, so partials space out by themselves as it fills.
# Measured and not cut further: partials nearly off (0.001, one per
# turn), 4 callers at once (bench_load --callers 4 --burst 4 --turns 4, 3 runs each way
# alternating, 96 turns each, AVX2-only host): the server's CPU fell from 89-107 % to 74-94 %,
# but v2v stayed P50 1.60 / P95 2.61 s against 1.62 / 2.62 s: the slow turns do not wait on them.
PARTIAL_CPU_SHARE = 0.5
COST_SMOOTHING = 0.5  # weight of the newest partial decode in its moving-average cost
# A speech frame counts as voiced while its level is within QUIET_DB of the loudest frame of
# its speech run (see TurnRules.quiet_backdate_ms).
QUIET_DB = 25.0
_QUIET_RATIO = 10 ** (-QUIET_DB / 20)  # the same, as a ratio of RMS levels


def samples(ms: float) -> int:
    """Milliseconds of 16 kHz input audio as a sample count."""
    return int(ms * INPUT_RATE // 1000)


def ms_between(start: int, end: int) -> int:
    return (end - start) * 1000 // INPUT_RATE


@dataclass(frozen=True)
class TurnRules:
    """The turn-taking settings in force (session configuration and server settings)."""

    vad_threshold: float = 0.5
    min_silence_ms: int = 800
    max_silence_ms: int = 2500
    speech_start_ms: int = 128
    interruption_delay_ms: int = 250
    backchannel_window_ms: int = 800
    backchannel_words: tuple[str, ...] = ()
    semantic: bool = True  # ``semantic_vad``: transcript and turn model judge completeness
    expected: tuple[Expect, ...] = ()  # entities the tools expect (§11.3)
    policy: Policy = DEFAULT_POLICY
    # Time the silence deadlines from where the voice went quiet, up to this long before the
    # VAD's last speech frame (0: from that frame). Silero keeps a fading word "speech" for a
    # while: median 120 ms (88-256) after its energy falls below -35 dBFS on the 20 test clips,
    # so a turn waits that much more than its min_silence. Off by default: measured with 192,
    # replies come ~0.1 s sooner, but pauses are then timed longer too, and more of them end
    # the turn (bench_turns, hesitations kept in min_latency 89.4 -> 83.2 %, phrase pauses in
    # balanced 58.3 -> 54.2 %); a cut-off costs a caller more than 0.1 s does.
    quiet_backdate_ms: int = 0


# ---------------------------------------------------------------------------------- state
@dataclass
class _Turn:
    item_id: str
    audio_start: int  # pre-roll included
    started_wall: float
    partial: str = ""
    last_partial_at: int = 0
    partial_pending: bool = False
    final_pending: bool = False
    result: Transcript | None = None
    final_wall: float | None = None
    verdict_pending: bool = False
    verdict_answered: bool = False
    probability: float | None = None  # the turn model's answer (None: it failed)
    judgement: Judgement | None = None
    speculated: bool = False  # its reply is being prepared (Speculate sent for this pause)
    silence_ms: int = 0  # silence since the voice went quiet, as of the latest frame

    def reset_pause(self) -> None:
        """Speech resumed: whatever was decided about the pause no longer holds."""
        self.final_pending = self.verdict_pending = self.verdict_answered = False
        self.result = self.probability = self.judgement = None
        self.speculated = False
        self.silence_ms = 0


@dataclass
class _Candidate:
    serial: int
    start: int  # sample index of the segment start
    partial: str = ""
    paused: bool = False
    ended: bool = False  # the speech stopped while its transcript was pending
    heard_to: int = 0  # sample index the latest candidate transcript covers
    last_partial_at: int = 0
    partial_pending: bool = False


class TurnTaker:
    """Who has the floor. Every method returns the actions it decided, in order."""

    def __init__(self, rules: TurnRules, new_item_id: Callable[[], str]) -> None:
        self.rules = rules
        self._new_item_id = new_item_id
        self._run_start: int | None = None  # start of the current speech run
        self._gap = 0  # samples of non-speech since the last speech frame
        self.last_speech_end = 0  # sample index after the last speech frame
        self.last_speech_wall = 0.0
        self._voiced_end = 0  # sample index after the last speech frame loud enough (QUIET_DB)
        self._run_peak = 0.0  # loudest frame level of the current speech run
        self._agent_from = 0  # sample index where the agent's current reply became audible
        self._turn: _Turn | None = None
        self._candidate: _Candidate | None = None
        self._serial = 0
        self.partial_cost = 0.0  # seconds one partial decode takes (moving average)

    @property
    def turn_open(self) -> bool:
        return self._turn is not None

    @property
    def busy(self) -> bool:
        """The user holds or contests the floor (a turn or a barge-in candidate is open)."""
        return self._turn is not None or self._candidate is not None

    # ------------------------------------------------------------------ inputs: audio
    def frame(
        self,
        prob: float,
        start: int,
        end: int,
        wall: float,
        floor: Floor,
        level: float | None = None,
    ) -> list[Action]:
        """One VAD frame covering samples ``start``–``end``, heard at ``wall``; ``level`` is
        its RMS (``None``: unknown, the VAD's edge alone times the pause)."""
        out: list[Action] = []
        gap_max = samples(SPEECH_GAP_MS)
        if prob >= self.rules.vad_threshold:
            if self._run_start is None or self._gap > gap_max:
                self._run_start = start
                self._run_peak = 0.0
            self._gap = 0
            self.last_speech_end = end
            self.last_speech_wall = wall
            if level is None or level >= self._run_peak * _QUIET_RATIO:
                self._voiced_end = end
            self._run_peak = max(self._run_peak, level or 0.0)
            self._on_speech(self._run_start, end, wall, floor, out)
        else:
            self._gap += end - start
            if self._run_start is not None and self._gap > gap_max:
                self._run_start = None
                self._segment_ended(out)
            if self._turn is not None:
                self._on_silence(self._turn, end, wall, out)
        return out

    def _on_speech(self, run: int, now: int, wall: float, floor: Floor, out: list[Action]) -> None:
        turn = self._turn
        if turn is not None:
            if turn.final_pending or turn.verdict_pending or turn.result is not None:
                if turn.final_pending:
                    out.append(CancelFinal(turn.item_id))
                if turn.verdict_pending:
                    out.append(CancelVerdict(turn.item_id))
                out.append(DropSpeculation())
            turn.reset_pause()
            self._maybe_partial(turn, now, out)
            return
        if self._candidate is not None:
            self._candidate.ended = False
            self._update_candidate(now, wall, floor, out)
            return
        if floor is Floor.SPEAKING:
            self._serial += 1
            self._candidate = _Candidate(self._serial, run)
            self._update_candidate(now, wall, floor, out)
            return
        if floor is Floor.SPEAKING_UNINTERRUPTIBLE:
            return
        if ms_between(run, now) >= self.rules.speech_start_ms:
            self._open_turn(run, wall, announce=True, out=out)

    def _on_silence(self, turn: _Turn, now: int, wall: float, out: list[Action]) -> None:
        # The deadlines count from where the voice went quiet; the decodes are asked by the
        # VAD's edge, as before: their audio must hold the pause that follows it (below), and
        # asked earlier they heard less of it (bench_turns, balanced, both counted from the
        # quiet: complete at min_silence 88.9 -> 83.3 %, hesitations kept 93.3 -> 92.3 %).
        backdate = samples(self.rules.quiet_backdate_ms)
        quiet_from = max(self._voiced_end, self.last_speech_end - backdate)
        turn.silence_ms = ms_between(quiet_from, now)
        silence_ms = ms_between(self.last_speech_end, now)
        lo = self.rules.min_silence_ms
        asked = turn.final_pending or turn.result is not None
        if not asked and silence_ms >= min(SPECULATE_MS, lo):
            turn.final_pending = True
            # The pause so far goes with the speech: the VAD calls a word's fading end silence,
            # and Whisper (its encoder fed the audio plus padding, not 30 s) drops a last word
            # cut at the VAD's edge ("...to see you again, Phil." lost "Phil"). bench_turns,
            # balanced: complete at min_silence 75 -> 80 %, hesitations kept 92.3 -> 93.3 %.
            out.append(WantFinal(turn.item_id, turn.audio_start, now))
        asked = turn.verdict_pending or turn.verdict_answered
        if self.rules.semantic and not asked and silence_ms >= min(VERDICT_MS, lo):
            turn.verdict_pending = True
            out.append(WantVerdict(turn.item_id, turn.audio_start, now, turn.partial))
        self._maybe_commit(turn, wall, out)

    # ------------------------------------------------------------------ inputs: transcripts
    def partial_heard(self, item_id: str, text: str, cost_seconds: float) -> list[Action]:
        """A partial decode of turn ``item_id`` finished after ``cost_seconds``."""
        self.partial_cost = COST_SMOOTHING * cost_seconds + (1 - COST_SMOOTHING) * self.partial_cost
        turn = self._turn
        if turn is None or turn.item_id != item_id:
            return []
        turn.partial_pending = False
        text = text.strip()
        if not text or text == turn.partial:
            return []
        turn.partial = text
        return [UserPartial(item_id, text)]

    def final_heard(self, item_id: str, transcript: Transcript, wall: float) -> list[Action]:
        """The final decode of turn ``item_id`` (its speech, up to the pause)."""
        turn = self._turn
        if turn is None or turn.item_id != item_id or not turn.final_pending:
            return []
        turn.final_pending = False
        turn.final_wall = wall
        turn.result = transcript
        out: list[Action] = []
        text = transcript.text.strip()
        rules = self.rules
        if (
            rules.semantic
            and not turn.verdict_answered
            and text
            and text_ending(text, rules.expected)[0] is Ending.FINAL
        ):
            # A closed sentence is COMPLETE, or UNSURE at worst, whatever the turn model says
            # (``judge``): its reply is prepared either way, so it starts now rather than when
            # the model answers (its request is made 72 ms after the final's; a one-off trace
            # on the 2-core target had it answer 30-70 ms after the final). Alone this moved
            # the first token only ~10 ms (bench_voice, min_latency): the first piece then
            # waited for its words until the commit; with the early cut
            # (``Reply._caller_waiting``) first audio left 594 -> 564 ms after the end of speech.
            turn.speculated = True
            out.append(Speculate(text, self._commit_in(turn, Verdict.COMPLETE)))
        self._decide(turn, wall, out)
        return out

    def verdict_heard(self, item_id: str, probability: float | None, wall: float) -> list[Action]:
        """The turn model's probability that turn ``item_id`` is complete, judged on its audio
        with the pause so far; ``None`` when the model failed (the text then decides alone)."""
        turn = self._turn
        if turn is None or turn.item_id != item_id or not turn.verdict_pending:
            return []
        turn.verdict_pending = False
        turn.verdict_answered = True
        turn.probability = probability
        out: list[Action] = []
        self._decide(turn, wall, out)
        return out

    def _decide(self, turn: _Turn, wall: float, out: list[Action]) -> None:
        """An answer arrived: judge the pause if it can be now, and commit if it is due."""
        self._judge(turn, out)
        self._maybe_commit(turn, wall, out)

    def _judge(self, turn: _Turn, out: list[Action]) -> None:
        """Judge the pause once what the rules need is known (§11.3): the transcript, and with
        ``semantic_vad`` the turn model too, unless nothing was said."""
        if turn.result is None or turn.judgement is not None:
            return
        text = turn.result.text.strip()
        rules = self.rules
        if not rules.semantic:
            turn.judgement = Judgement(Verdict.COMPLETE, text_ending(text)[0], "server_vad")
        elif text and not turn.verdict_answered:
            return  # the audio's say is still to come
        else:
            turn.judgement = judge(turn.probability, text, rules.expected, rules.policy)
        verdict = turn.judgement.verdict
        if text and verdict is not Verdict.INCOMPLETE and not turn.speculated:
            turn.speculated = True
            out.append(Speculate(text, self._commit_in(turn, verdict)))

    def _due_ms(self, verdict: Verdict) -> int:
        """The silence after which a turn judged ``verdict`` is committed."""
        rules = self.rules
        lo, hi = rules.min_silence_ms, rules.max_silence_ms
        return min(hi, deadline_ms(verdict, lo, hi, rules.policy))

    def _commit_in(self, turn: _Turn, verdict: Verdict) -> int:
        """Silence still to run before a turn judged ``verdict`` ends."""
        return max(0, self._due_ms(verdict) - turn.silence_ms)

    def candidate_heard(
        self, candidate: int, text: str, at: int, wall: float, floor: Floor
    ) -> list[Action]:
        """The barge-in candidate's transcript, covering its speech up to sample ``at``."""
        cand = self._candidate
        if cand is None or cand.serial != candidate:
            return []
        cand.partial_pending = False
        cand.partial = text.strip()
        cand.heard_to = at
        out: list[Action] = []
        if not cand.ended:
            self._update_candidate(max(at, self.last_speech_end), wall, floor, out)
        elif has_non_backchannel_word(cand.partial, self.rules.backchannel_words):
            if floor is not Floor.IDLE:
                self._barge_in(cand, wall, out)
        else:
            self._drop_candidate(out, resume=True)
        return out

    # ------------------------------------------------------------------ inputs: the agent
    def agent_audible(self, sample: int) -> None:
        """The agent's reply started (its first output) at input sample ``sample``."""
        self._agent_from = sample

    def agent_done(self, sample: int) -> list[Action]:
        """The agent's reply ended (completed or interrupted) at input sample ``sample``."""
        out: list[Action] = []
        self._drop_candidate(out, resume=False)
        if self._run_start is not None:
            # speech over the agent's last words starts a new segment now (§11.4)
            self._run_start = sample
        return out

    def withdraw_candidate(self) -> list[Action]:
        """The client cancelled the reply: a pending barge-in candidate has nothing to stop."""
        out: list[Action] = []
        self._drop_candidate(out, resume=True)
        return out

    def detach(self) -> tuple[list[Action], OpenTurn | None]:
        """The connection is gone: drop a candidate and hand back the open turn, if any."""
        out: list[Action] = []
        self._drop_candidate(out, resume=True)
        turn, self._turn = self._turn, None
        if turn is None:
            return out, None
        return out, OpenTurn(turn.item_id, turn.audio_start, self.last_speech_end)

    # ------------------------------------------------------------------ user turns
    def _open_turn(
        self, segment_start: int, wall: float, *, announce: bool, out: list[Action]
    ) -> _Turn:
        item_id = self._new_item_id()
        self._turn = _Turn(item_id, max(0, segment_start - samples(PREROLL_MS)), wall)
        out.append(TurnOpened(item_id, announce))
        return self._turn

    def _maybe_partial(self, turn: _Turn, now: int, out: list[Action]) -> None:
        every = samples(max(PARTIAL_EVERY_MS, 1000 * self.partial_cost / PARTIAL_CPU_SHARE))
        if turn.partial_pending or now - turn.last_partial_at < every:
            return
        turn.last_partial_at = now
        turn.partial_pending = True
        out.append(WantPartial(turn.item_id, turn.audio_start))

    def _maybe_commit(self, turn: _Turn, wall: float, out: list[Action]) -> None:
        """End the turn at the judgement's deadline, or at ``max_silence`` regardless, once
        its transcript is there."""
        if turn.result is None:
            return
        due = self.rules.max_silence_ms
        if turn.judgement is not None:
            due = self._due_ms(turn.judgement.verdict)
        if turn.silence_ms < due:
            return
        self._turn = None
        out.append(
            CommitTurn(
                turn.item_id,
                turn.result,
                turn.started_wall,
                wall,
                self.last_speech_wall,
                turn.final_wall,
            )
        )

    # ------------------------------------------------------------------ barge-in
    def _update_candidate(self, now: int, wall: float, floor: Floor, out: list[Action]) -> None:
        cand = self._candidate
        if cand is None or floor is Floor.IDLE:
            return
        origin = max(cand.start, self._agent_from)
        if ms_between(origin, now) < self.rules.interruption_delay_ms:
            return
        if not cand.paused:
            cand.paused = True
            out.append(PauseReply())
        # "no word after backchannel_window_ms" is judged on a transcript that covers that much
        # speech: with a recogniser that takes ~0.5 s, the audio is paused meanwhile anyway
        heard_ms = ms_between(origin, cand.heard_to)
        if has_non_backchannel_word(cand.partial, self.rules.backchannel_words) or (
            heard_ms >= self.rules.backchannel_window_ms and not has_word(cand.partial)
        ):
            self._barge_in(cand, wall, out)
            return
        due = now - cand.last_partial_at >= samples(CANDIDATE_PARTIAL_EVERY_MS)
        if not cand.partial_pending and (due or not cand.last_partial_at):
            cand.last_partial_at = now
            cand.partial_pending = True
            start = max(0, cand.start - samples(PREROLL_MS))
            out.append(WantCandidatePartial(cand.serial, start, now))

    def _segment_ended(self, out: list[Action]) -> None:
        """The speech stopped: a paused reply waits for the words still being recognised.

        A short phrase ("wait, …") can end before its transcript is ready; it still interrupts
        if the transcript has a real word. A cough or a backchannel lets the reply resume.
        """
        cand = self._candidate
        if cand is not None and cand.paused and cand.partial_pending:
            cand.ended = True
            return
        self._drop_candidate(out, resume=True)

    def _drop_candidate(self, out: list[Action], *, resume: bool) -> None:
        """A segment that ends without a barge-in leaves no trace."""
        cand, self._candidate = self._candidate, None
        if cand is not None:
            out.append(DropCandidate(resume=resume and cand.paused))

    def _barge_in(self, cand: _Candidate, wall: float, out: list[Action]) -> None:
        """§11.5: stop the reply and open the user turn where the candidate's speech began."""
        self._candidate = None
        out.append(DropCandidate(resume=False))
        out.append(BargeIn())
        turn = self._open_turn(cand.start, wall, announce=False, out=out)
        if cand.partial:
            turn.partial = cand.partial
            out.append(UserPartial(turn.item_id, cand.partial))

"""Turn-end accuracy over real speech: audio-only (today) vs. audio + transcript (issue #11).

    PYTHONPATH=src:. .venv/bin/python -m bench.bench_turns [--quick] [--speech-dir DIR]

Material (real recordings only):

* complete: each ``asr_*`` clip of the speech set, followed by its own room tone, except
  *fragments*: clips whose punctuated reference stops mid-sentence (LJ Speech cuts long
  sentences: "...as an example of fine typography,"). A listener should wait there, so they are
  reported apart ("fragment waited": the turn did not end at min_silence), and "complete@min
  (all)" still counts every clip as complete, as this benchmark did before;
* hesitation: the same clips with 600/800/1000/1200 ms of room tone inserted after a
  conjunction, preposition, article or filler, found with faster-whisper word timestamps;
* phrase: the same pause lengths inserted at the reader's own phrase and sentence gaps (a
  pause between parts of one thought, after a content word).

Each variant is fed, frame by frame (Silero VAD, threshold 0.5), to the engine's own turn-taking
core, :class:`~vocalis.session.turns.TurnTaker` (``engine: TurnTaker``): the embedded models
answer its requests for the final transcript (Whisper tiny.en on the turn's speech) and the turn
model's verdict (Smart Turn on the turn's audio with 200 ms of the pause), and the turn ends where
it commits. For comparison, a re-implemented loop gives the ablations:

* ``before: cut/audio``: the engine before issue #11: Smart Turn alone (P >= 0.5 ends the turn
  at min_silence, otherwise max_silence), fed the audio up to the last speech frame;
* ``cut/combined``: the combined rule (:func:`vocalis.session.end_of_turn.judge`) on that feed;
* ``tail/audio``: Smart Turn alone, fed as the reference pipeline (pipecat) does: the audio up to
  now, asked once 200 ms of silence has passed.

``--sweep`` also runs the TurnTaker with other thresholds of the combined rule.

Results: a table on stdout and ``bench/results/turns.png``. The machine is shared and small, so
wall-clock figures are not reported; accuracy figures do not depend on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tests.speech import manifest
from tests.turn_clips import (
    RATE,
    Audio,
    cut_point,
    hesitation_points,
    load,
    phrase_gaps,
    room_tone,
    word_timestamps,
)

from bench.common import is_fragment, pyplot, save_figure
from vocalis.audio.levels import frame_rms
from vocalis.providers.base import STTOptions, Transcript
from vocalis.session.end_of_turn import DEFAULT_POLICY, Policy, Verdict, deadline_ms, judge
from vocalis.session.turn_actions import CommitTurn, Floor, WantFinal, WantVerdict
from vocalis.session.turns import TurnRules, TurnTaker

ROOT = Path(__file__).resolve().parents[1]
SHARED_SPEECH = ROOT.parent / "shared" / "speech"
RESULTS = ROOT / "bench" / "results"
FRAME = 512
VAD_THRESHOLD = 0.5
SPEECH_GAP_MS = 100
SPEECH_START_MS = 100
PREROLL_MS = 300
MODES = {"balanced": (800, 2500), "min_latency": (500, 1500)}
PAUSES_MS = (600, 800, 1000, 1200)
FEEDS = {"cut": (128, 0), "tail": (200, 200)}  # (ask at silence ms, trailing ms given to the model)
TAIL_MS = 3200  # room tone after each variant: more than the longest max_silence


@dataclass
class Variant:
    clip: str
    kind: str  # complete | fragment | hesitation | phrase
    pause_ms: int
    audio: Audio
    pause_at: float | None = None  # seconds into the variant where the pause starts
    after_word: str = ""


@dataclass
class Outcome:
    ends: list[tuple[int, int]] = field(default_factory=list)  # (end sample, silence ms at end)
    last_speech: int = 0
    texts: list[str] = field(default_factory=list)  # the final transcript at each end (engine)
    probs: list[float | None] = field(default_factory=list)  # the turn model's P at each end


_CLOSED = re.compile(r"[.!?…][\"')\]]*\s*$")


def left_open(text: str) -> bool:
    """The recogniser did not close the transcript with a mark ("He who recited the f")."""
    return bool(text.strip()) and _CLOSED.search(text) is None


def last_speech_end(probs: list[float]) -> int:
    """End sample of the speaker's last speech: the last run of VAD frames (gaps up to
    ``SPEECH_GAP_MS`` bridged) lasting at least ``SPEECH_START_MS``, the engine's own bar for
    speech. A shorter blip is not a word: asr_06 ends with a 64 ms click where the recording
    meets its room tone, and counting it made a turn that ended after the last word (at
    min_silence, in min_latency) a "cut-off" in every variant of that clip."""
    gap_max = SPEECH_GAP_MS * RATE // 1000
    need = SPEECH_START_MS * RATE // 1000
    last = 0
    run: tuple[int, int] | None = None  # (start, end) of the current run
    for i, p in enumerate(probs):
        if p < VAD_THRESHOLD:
            continue
        start, end = i * FRAME, (i + 1) * FRAME
        run = (run[0], end) if run is not None and start - run[1] <= gap_max else (start, end)
        if run[1] - run[0] >= need:
            last = run[1]
    return last


class Models:
    """The embedded models, called synchronously with results cached by audio content."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from vocalis.providers.embedded import ensure_assets, limit_blas_threads
        from vocalis.providers.embedded.stt import WhisperSTT
        from vocalis.providers.embedded.turn import SmartTurn
        from vocalis.providers.embedded.vad import SileroVAD
        from vocalis.settings import Settings

        settings = Settings()
        limit_blas_threads(settings.embedded_blas_threads)  # as served: the features can differ
        assets = ensure_assets(settings)
        self.vad = SileroVAD(assets.vad_model)
        self.turn = SmartTurn(assets.turn_model)
        self.stt = WhisperSTT(assets.stt_model_dir, threads=2)
        self.words_model = WhisperModel(
            str(assets.stt_model_dir), device="cpu", compute_type="int8", cpu_threads=2
        )
        self._text: dict[bytes, str] = {}
        self._prob: dict[bytes, float] = {}

    def vad_probs(self, audio: Audio) -> list[float]:
        n = len(audio) // FRAME
        stream = self.vad.open_stream()  # the shared VAD worker, as the server runs it
        return asyncio.run(stream.probabilities(audio[: n * FRAME]))

    def text(self, audio: Audio) -> str:
        key = hashlib.sha1(audio.tobytes()).digest()
        if key not in self._text:
            self._text[key] = self.stt._run(audio, STTOptions(), True).text.strip()
        return self._text[key]

    def prob(self, audio: Audio) -> float:
        key = hashlib.sha1(audio.tobytes()).digest()
        if key not in self._prob:
            self._prob[key] = self.turn._predict(audio)
        return self._prob[key]


Rule = Callable[[float, str], Verdict]


def audio_rule(prob: float, text: str) -> Verdict:
    return Verdict.COMPLETE if prob >= 0.5 else Verdict.INCOMPLETE


def combined_rule(prob: float, text: str) -> Verdict:
    return judge(prob, text).verdict


def simulate(
    models: Models, audio: Audio, probs: list[float], feed: str, rule: Rule, lo: int, hi: int
) -> Outcome:
    """Turn ends found by a re-implemented turn-taking loop (the ablations; see the module doc)."""
    ask_ms, trailing_ms = FEEDS[feed]
    gap_max = SPEECH_GAP_MS * RATE // 1000
    out = Outcome(last_speech=last_speech_end(probs))
    run_start: int | None = None
    gap = 0
    last_end = 0
    turn_start: int | None = None
    verdict: Verdict | None = None
    for i, p in enumerate(probs):
        start, end = i * FRAME, (i + 1) * FRAME
        if p >= VAD_THRESHOLD:
            if run_start is None or gap > gap_max:
                run_start = start
            gap = 0
            last_end = end
            verdict = None  # speech resumed: timers reset, ask again on the next pause
            if turn_start is None and (end - run_start) * 1000 // RATE >= SPEECH_START_MS:
                turn_start = max(0, run_start - PREROLL_MS * RATE // 1000)
            continue
        gap += end - start
        if gap > gap_max:
            run_start = None
        if turn_start is None:
            continue
        silence = (end - last_end) * 1000 // RATE
        if verdict is None and silence >= ask_ms:
            segment = audio[turn_start:last_end]
            heard = audio[turn_start : last_end + trailing_ms * RATE // 1000]
            verdict = rule(models.prob(heard), models.text(segment))
        if verdict is not None and silence >= deadline_ms(verdict, lo, hi):
            out.ends.append((end, silence))
            turn_start, verdict = None, None
    return out


def engine(
    models: Models,
    audio: Audio,
    probs: list[float],
    lo: int,
    hi: int,
    policy: Policy = DEFAULT_POLICY,
    quiet_backdate_ms: int = 0,
) -> Outcome:
    """Turn ends found by the shipped core, :class:`~vocalis.session.turns.TurnTaker`, with the
    embedded models answering its requests (at once: accuracy, not timing, is measured here)."""
    ids = itertools.count()
    rules = TurnRules(
        vad_threshold=VAD_THRESHOLD,
        min_silence_ms=lo,
        max_silence_ms=hi,
        speech_start_ms=SPEECH_START_MS,
        policy=policy,
        quiet_backdate_ms=quiet_backdate_ms,
    )
    taker = TurnTaker(rules, lambda: f"turn_{next(ids)}")
    out = Outcome(last_speech=last_speech_end(probs))
    levels = frame_rms(audio, FRAME)
    heard_prob: float | None = None  # the turn model's latest answer
    for i, p in enumerate(probs):
        start, end = i * FRAME, (i + 1) * FRAME
        wall = end / RATE
        level = float(levels[i]) if i < len(levels) else None
        actions = taker.frame(p, start, end, wall, Floor.IDLE, level)
        while actions:
            match actions.pop(0):
                case WantFinal(item, a, b):
                    text = models.text(audio[a:b])
                    actions += taker.final_heard(item, Transcript(text), wall)
                case WantVerdict(item, a, b):
                    heard_prob = models.prob(audio[a:b])
                    actions += taker.verdict_heard(item, heard_prob, wall)
                case CommitTurn(transcript=heard):
                    out.ends.append((end, (end - taker.last_speech_end) * 1000 // RATE))
                    out.texts.append(heard.text)
                    out.probs.append(heard_prob)
    return out


Strategy = Callable[[Models, Audio, list[float], int, int], Outcome]
STRATEGIES: dict[str, Strategy] = {
    "before: cut/audio": lambda m, a, p, lo, hi: simulate(m, a, p, "cut", audio_rule, lo, hi),
    "cut/combined": lambda m, a, p, lo, hi: simulate(m, a, p, "cut", combined_rule, lo, hi),
    "tail/audio": lambda m, a, p, lo, hi: simulate(m, a, p, "tail", audio_rule, lo, hi),
    "engine: TurnTaker": engine,
    # the server with VOCALIS_TURN_QUIET_BACKDATE_MS=192 (off by default: see TurnRules)
    "engine, quiet 192": lambda m, a, p, lo, hi: engine(m, a, p, lo, hi, quiet_backdate_ms=192),
    # the rule before UNSURE waited at least 1.3 s (Policy.unsure_floor_ms): halfway to
    # max_silence, 1.0 s in min_latency
    "engine, unsure halfway": lambda m, a, p, lo, hi: engine(
        m, a, p, lo, hi, Policy(unsure_floor_ms=0)
    ),
    # the rule before open transcripts stopped ending turns (Policy.bare_text_can_complete)
    "engine, open may end": lambda m, a, p, lo, hi: engine(
        m, a, p, lo, hi, Policy(bare_text_can_complete=True)
    ),
}


def build_variants(
    models: Models, clips: list[Path], pauses: tuple[int, ...], refs: dict[str, str]
) -> list[Variant]:
    variants: list[Variant] = []
    for path in clips:
        audio = load(path)
        tail = room_tone(audio, TAIL_MS)
        kind = "fragment" if is_fragment(refs.get(path.name, "")) else "complete"
        variants.append(Variant(path.name, kind, 0, np.concatenate([audio, tail])))
        words = word_timestamps(models.words_model, audio)
        for kind, points in (
            ("hesitation", hesitation_points(words)[:3]),
            ("phrase", phrase_gaps(words)[:2]),
        ):
            for index in points:
                at = cut_point(audio, words, index)
                cut = int(at * RATE)
                for ms in pauses:
                    parts = [audio[:cut], room_tone(audio, ms), audio[cut:], tail]
                    variants.append(
                        Variant(path.name, kind, ms, np.concatenate(parts), at, words[index].text)
                    )
    return variants


def cut_off(variant: Variant, outcome: Outcome) -> bool:
    """The turn ended before the speaker's last word (during a pause)."""
    return any(end < outcome.last_speech for end, _ in outcome.ends)


def ended_at_min(outcome: Outcome, lo: int) -> bool:
    """The complete utterance ended once, after its last word, at min_silence."""
    finals = [(e, s) for e, s in outcome.ends if e >= outcome.last_speech]
    early = [e for e, _ in outcome.ends if e < outcome.last_speech]
    return not early and bool(finals) and finals[0][1] < lo + FRAME * 1000 // RATE


def show_misses(variant: Variant, mode: str, outcome: Outcome, lo: int) -> None:
    """Print where the engine went wrong on this variant: a turn ended before the last word
    (a cut-off), or a complete utterance that did not end at min_silence, with the final
    transcript, the turn model's P and the rule that decided at each end."""
    if variant.kind == "fragment":
        return  # waiting is right there
    if variant.kind == "complete" and ended_at_min(outcome, lo):
        return
    if variant.kind != "complete" and not cut_off(variant, outcome):
        return
    where = f"{variant.clip[:6]} {variant.kind:10s} {variant.pause_ms:4d} {variant.after_word:>10s}"
    for (end, silence), text, prob in zip(outcome.ends, outcome.texts, outcome.probs, strict=True):
        before = "cut" if end < outcome.last_speech else "end"
        shown = "-" if prob is None else f"{prob:.3f}"
        print(
            f"  {mode:11s} {where} {before} after {silence:4d} ms  P={shown:5s} "
            f"{judge(prob, text).reason:40s} {text[-60:]!r}"
        )


def pct(values: list[bool]) -> str:
    return (
        f"{100 * sum(values) / len(values):5.1f}% ({sum(values)}/{len(values)})" if values else "-"
    )


Key = tuple[str, str]  # (strategy, mode)
SWEEP = (
    Policy(final_veto_prob=0.0),
    Policy(final_veto_prob=0.01),
    Policy(final_veto_prob=0.02),
    Policy(final_veto_prob=0.05),
    Policy(final_veto_prob=0.1),
    Policy(final_veto_prob=0.2),
    Policy(final_veto_prob=0.1, unsure_fraction=0.75),
)


@dataclass
class Tally:
    """Per (strategy, mode): complete utterances ending at min_silence, and cut-offs by kind
    and pause length."""

    complete: dict[Key, list[bool]] = field(default_factory=dict)
    fragment: dict[Key, list[bool]] = field(default_factory=dict)  # ended at min_silence
    cut: dict[tuple[str, str, str, int], list[bool]] = field(default_factory=dict)
    # the engine's final transcript left open: at each hesitation/phrase cut-off, and at the
    # end of each complete utterance
    open_cut: dict[Key, list[bool]] = field(default_factory=dict)
    open_complete: dict[Key, list[bool]] = field(default_factory=dict)

    def add(self, key: Key, variant: Variant, outcome: Outcome, lo: int) -> None:
        if variant.kind == "complete":
            self.complete.setdefault(key, []).append(ended_at_min(outcome, lo))
        elif variant.kind == "fragment":
            self.fragment.setdefault(key, []).append(ended_at_min(outcome, lo))
        else:
            flag = cut_off(variant, outcome)
            self.cut.setdefault((*key, variant.kind, variant.pause_ms), []).append(flag)
        if not outcome.texts:
            return  # a re-implemented loop: no transcripts recorded
        if variant.kind == "complete":
            self.open_complete.setdefault(key, []).append(left_open(outcome.texts[-1]))
        elif variant.kind != "fragment" and cut_off(variant, outcome):
            first = next(i for i, (e, _) in enumerate(outcome.ends) if e < outcome.last_speech)
            self.open_cut.setdefault(key, []).append(left_open(outcome.texts[first]))

    def kept(self, key: Key, kind: str, pauses: tuple[int, ...]) -> list[bool]:
        return [not c for ms in pauses for c in self.cut.get((*key, kind, ms), [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 clips, 2 pause lengths")
    parser.add_argument("--speech-dir", type=Path, default=None)
    parser.add_argument(
        "--show",
        action="store_true",
        help="print the engine's misses (cut-offs, late ends) with transcript and turn-model P",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also try other thresholds of the combined rule"
    )
    args = parser.parse_args(argv)
    folder = args.speech_dir or (
        SHARED_SPEECH if SHARED_SPEECH.exists() else ROOT / "tests" / "data"
    )
    clips = sorted(folder.glob("asr_*.wav"))
    pauses: tuple[int, ...] = PAUSES_MS
    if args.quick:
        clips, pauses = clips[:6], (600, 1000)
    print(f"speech set: {folder} ({len(clips)} asr_* clips)")
    print("note: 2 shared CPU cores; accuracy figures only (timing-free), models are deterministic")
    started = time.perf_counter()
    models = Models()
    variants = build_variants(models, clips, pauses, manifest(folder))
    kinds = ("complete", "fragment", "hesitation", "phrase")
    counts = {k: sum(v.kind == k for v in variants) for k in kinds}
    print(f"variants: {counts}")

    tally, sweep = Tally(), Tally()
    for variant in variants:
        probs = models.vad_probs(variant.audio)
        for mode, (lo, hi) in MODES.items():
            for name, strategy in STRATEGIES.items():
                outcome = strategy(models, variant.audio, probs, lo, hi)
                tally.add((name, mode), variant, outcome, lo)
                if args.show and name == "engine: TurnTaker":
                    show_misses(variant, mode, outcome, lo)
            if args.sweep:
                for policy in SWEEP:
                    outcome = engine(models, variant.audio, probs, lo, hi, policy)
                    sweep.add((_policy_name(policy), mode), variant, outcome, lo)
    print(f"done in {time.perf_counter() - started:.0f} s (noisy: shared machine)\n")
    report(tally, list(STRATEGIES), pauses)
    if args.sweep:
        print("\nthreshold sweep of the combined rule, through the TurnTaker")
        report(sweep, [_policy_name(p) for p in SWEEP], pauses, by_length=False)
    plot(tally, list(STRATEGIES), pauses)
    return 0


def _policy_name(policy: Policy) -> str:
    return f"veto {policy.final_veto_prob:g} unsure {policy.unsure_fraction:g}"


def _rate(values: list[bool]) -> float:
    return 100 * sum(values) / len(values) if values else float("nan")


def report(
    tally: Tally, names: list[str], pauses: tuple[int, ...], *, by_length: bool = True
) -> None:
    header = f"{'strategy':22s} {'mode':12s} {'complete@min':>18s} "
    header += f"{'hesitation kept':>18s} {'phrase kept':>18s} "
    header += f"{'fragment waited':>16s} {'complete@min (all)':>19s}"
    print(header)
    print("-" * len(header))
    for name in names:
        for mode in MODES:
            key = (name, mode)
            print(
                f"{name:22s} {mode:12s} {pct(tally.complete.get(key, [])):>18s} "
                f"{pct(tally.kept(key, 'hesitation', pauses)):>18s} "
                f"{pct(tally.kept(key, 'phrase', pauses)):>18s} "
                f"{pct([not e for e in tally.fragment.get(key, [])]):>16s} "
                f"{pct(tally.complete.get(key, []) + tally.fragment.get(key, [])):>19s}"
            )
    if tally.open_cut or tally.open_complete:
        print("\nfinal transcripts left open (no closing mark): at cut-offs | complete utterances")
        for name in names:
            for mode in MODES:
                key = (name, mode)
                if key in tally.open_cut or key in tally.open_complete:
                    cuts, done = tally.open_cut.get(key, []), tally.open_complete.get(key, [])
                    print(
                        f"{name:22s} {mode:12s} {sum(cuts)}/{len(cuts)} cut-offs | "
                        f"{sum(done)}/{len(done)} complete"
                    )
    if not by_length:
        return
    print("\nfalse cut-off rate by inserted pause length (hesitation | phrase)")
    print(f"{'strategy':22s} {'mode':12s} " + " ".join(f"{ms:>15d}" for ms in pauses))
    for name in names:
        for mode in MODES:
            cells = []
            for ms in pauses:
                h = _rate(tally.cut.get((name, mode, "hesitation", ms), []))
                p = _rate(tally.cut.get((name, mode, "phrase", ms), []))
                cells.append(f"{h:5.1f}% | {p:5.1f}%")
            print(f"{name:22s} {mode:12s} " + " ".join(f"{c:>15s}" for c in cells))


def plot(tally: Tally, names: list[str], pauses: tuple[int, ...]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    x = np.arange(len(names))
    for j, mode in enumerate(MODES):
        values = [_rate(tally.complete.get((n, mode), [])) for n in names]
        axes[0].bar(x + 0.4 * j - 0.2, values, 0.4, label=mode)
    axes[0].axhline(90, color="k", ls="--", lw=0.8)
    axes[0].set(title="complete utterances ending at min_silence", ylabel="%", ylim=(0, 105))
    axes[0].set_xticks(x, names, rotation=15, fontsize=8)
    axes[0].legend()
    for ax, kind in zip(axes[1:], ("hesitation", "phrase"), strict=True):
        for name in names:
            for mode, style in zip(MODES, ("-", ":"), strict=True):
                ys = [_rate(tally.cut.get((name, mode, kind, ms), [])) for ms in pauses]
                ax.plot(pauses, ys, style, marker="o", label=f"{name} {mode}")
        ax.axhline(5, color="k", ls="--", lw=0.8)
        ax.set(title=f"false cut-offs, {kind} pauses", xlabel="inserted pause (ms)", ylabel="%")
        ax.set_ylim(-2, 102)
    axes[2].legend(fontsize=7)
    out = RESULTS / "turns.png"
    save_figure(fig, out, dpi=110)
    print(f"\nplot: {out}")


if __name__ == "__main__":
    sys.exit(main())

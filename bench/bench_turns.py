"""Turn-end accuracy over real speech: audio-only (today) vs. audio + transcript (issue #11).

    PYTHONPATH=src:. .venv/bin/python -m bench.bench_turns [--quick] [--speech-dir DIR]

Material (real recordings only):

* complete: each ``asr_*`` clip of the speech set, followed by its own room tone;
* hesitation: the same clips with 600/800/1000/1200 ms of room tone inserted after a
  conjunction, preposition, article or filler, found with faster-whisper word timestamps;
* phrase: the same pause lengths inserted at the reader's own phrase and sentence gaps (a
  pause between parts of one thought, after a content word).

Each variant is streamed through the engine's turn-taking as ``listening.py`` does it: Silero
VAD frames (threshold 0.5), a turn opens after 100 ms of continuous speech, silence is measured
from the last speech frame, the final transcript (Whisper tiny.en, the engine's options) and the
Smart Turn probability are computed once per pause, and the turn ends at the deadline the rule
gives, unless speech resumes first. Rules compared:

* ``audio``: today's rule, P ≥ 0.5 ends at min_silence, otherwise max_silence;
* ``combined``: :func:`vocalis.session.end_of_turn.judge`.

Two ways of feeding Smart Turn are compared as well: ``cut`` (today's engine: the audio up to the
last speech frame, asked 128 ms into the pause) and ``tail`` (the reference pipeline's way,
pipecat: the audio up to now, asked once 200 ms of silence has passed).

Results: a table on stdout and ``bench/results/turns.png``. The machine is shared and small, so
wall-clock figures are not reported; accuracy figures do not depend on speed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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

from vocalis.providers.base import STTOptions
from vocalis.session.end_of_turn import Verdict, deadline_ms, judge

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
    kind: str  # complete | hesitation | phrase
    pause_ms: int
    audio: Audio
    pause_at: float | None = None  # seconds into the variant where the pause starts
    after_word: str = ""


@dataclass
class Outcome:
    ends: list[tuple[int, int]] = field(default_factory=list)  # (end sample, silence ms at end)
    last_speech: int = 0


class Models:
    """The embedded models, called synchronously with results cached by audio content."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from vocalis.providers.embedded import ensure_assets
        from vocalis.providers.embedded.stt import WhisperSTT
        from vocalis.providers.embedded.turn import SmartTurn
        from vocalis.providers.embedded.vad import SileroVAD
        from vocalis.settings import Settings

        assets = ensure_assets(Settings())
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
        return self.vad.open_stream()._run(audio[: n * FRAME])

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


RULES: dict[str, Rule] = {"audio": audio_rule, "combined": combined_rule}


def simulate(
    models: Models, audio: Audio, probs: list[float], feed: str, rule: Rule, lo: int, hi: int
) -> Outcome:
    """Turn ends found by the engine's turn-taking over one variant (see the module doc)."""
    ask_ms, trailing_ms = FEEDS[feed]
    gap_max = SPEECH_GAP_MS * RATE // 1000
    out = Outcome()
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
            out.last_speech = end
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


def build_variants(models: Models, clips: list[Path], pauses: tuple[int, ...]) -> list[Variant]:
    variants: list[Variant] = []
    for path in clips:
        audio = load(path)
        tail = room_tone(audio, TAIL_MS)
        variants.append(Variant(path.name, "complete", 0, np.concatenate([audio, tail])))
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


def pct(values: list[bool]) -> str:
    return (
        f"{100 * sum(values) / len(values):5.1f}% ({sum(values)}/{len(values)})" if values else "-"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 clips, 2 pause lengths")
    parser.add_argument("--speech-dir", type=Path, default=None)
    parser.add_argument("--show", action="store_true", help="print every variant's verdicts")
    args = parser.parse_args(argv)
    folder = args.speech_dir or (
        SHARED_SPEECH if SHARED_SPEECH.exists() else ROOT / "tests" / "data"
    )
    clips = sorted(folder.glob("asr_*.wav"))
    pauses = PAUSES_MS
    if args.quick:
        clips, pauses = clips[:6], (600, 1000)
    print(f"speech set: {folder} ({len(clips)} asr_* clips)")
    print("note: 2 shared CPU cores; accuracy figures only (timing-free), models are deterministic")
    started = time.perf_counter()
    models = Models()
    variants = build_variants(models, clips, pauses)
    counts = {k: sum(v.kind == k for v in variants) for k in ("complete", "hesitation", "phrase")}
    print(f"variants: {counts}")

    # results[(feed, rule, mode)] -> per-variant bool lists
    complete_ok: dict[tuple[str, str, str], list[bool]] = {}
    cut: dict[tuple[str, str, str, str, int], list[bool]] = {}
    for variant in variants:
        probs = models.vad_probs(variant.audio)
        for feed in FEEDS:
            for rule_name, rule in RULES.items():
                for mode, (lo, hi) in MODES.items():
                    outcome = simulate(models, variant.audio, probs, feed, rule, lo, hi)
                    if variant.kind == "complete":
                        ok = ended_at_min(outcome, lo)
                        complete_ok.setdefault((feed, rule_name, mode), []).append(ok)
                        flag = cut_off(variant, outcome)
                    else:
                        flag = cut_off(variant, outcome)
                        key = (feed, rule_name, mode, variant.kind, variant.pause_ms)
                        cut.setdefault(key, []).append(flag)
                    if args.show and feed == "tail" and mode == "balanced":
                        print(
                            f"  {variant.clip[:6]} {variant.kind:10s} {variant.pause_ms:4d} "
                            f"{variant.after_word:>10s} {rule_name:8s} ends={outcome.ends} "
                            f"last={outcome.last_speech} cutoff={flag}"
                        )
    print(f"done in {time.perf_counter() - started:.0f} s (noisy: shared machine)\n")
    report(complete_ok, cut, pauses)
    plot(complete_ok, cut, pauses)
    return 0


def _rate(values: list[bool]) -> float:
    return 100 * sum(values) / len(values) if values else float("nan")


def report(
    complete_ok: dict[tuple[str, str, str], list[bool]],
    cut: dict[tuple[str, str, str, str, int], list[bool]],
    pauses: tuple[int, ...],
) -> None:
    header = f"{'feed':5s} {'rule':9s} {'mode':12s} {'complete@min':>18s} "
    header += f"{'hesitation kept':>18s} {'phrase kept':>18s}"
    print(header)
    print("-" * len(header))
    for feed in FEEDS:
        for rule in RULES:
            for mode in MODES:
                kept = {
                    kind: [
                        not c for ms in pauses for c in cut.get((feed, rule, mode, kind, ms), [])
                    ]
                    for kind in ("hesitation", "phrase")
                }
                print(
                    f"{feed:5s} {rule:9s} {mode:12s} {pct(complete_ok[(feed, rule, mode)]):>18s} "
                    f"{pct(kept['hesitation']):>18s} {pct(kept['phrase']):>18s}"
                )
    print("\nfalse cut-off rate by inserted pause length (hesitation | phrase)")
    print(f"{'feed':5s} {'rule':9s} {'mode':12s} " + " ".join(f"{ms:>15d}" for ms in pauses))
    for feed in FEEDS:
        for rule in RULES:
            for mode in MODES:
                cells = []
                for ms in pauses:
                    h = _rate(cut.get((feed, rule, mode, "hesitation", ms), []))
                    p = _rate(cut.get((feed, rule, mode, "phrase", ms), []))
                    cells.append(f"{h:5.1f}% | {p:5.1f}%")
                print(f"{feed:5s} {rule:9s} {mode:12s} " + " ".join(f"{c:>15s}" for c in cells))


def plot(
    complete_ok: dict[tuple[str, str, str], list[bool]],
    cut: dict[tuple[str, str, str, str, int], list[bool]],
    pauses: tuple[int, ...],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = [f"{f}/{r}" for f in FEEDS for r in RULES]
    x = np.arange(len(labels))
    for j, mode in enumerate(MODES):
        values = [_rate(complete_ok[(f, r, mode)]) for f in FEEDS for r in RULES]
        axes[0].bar(x + 0.4 * j - 0.2, values, 0.4, label=mode)
    axes[0].axhline(90, color="k", ls="--", lw=0.8)
    axes[0].set(title="complete utterances ending at min_silence", ylabel="%", ylim=(0, 105))
    axes[0].set_xticks(x, labels, rotation=20)
    axes[0].legend()
    for ax, kind in zip(axes[1:], ("hesitation", "phrase"), strict=True):
        for f in FEEDS:
            for r in RULES:
                for mode, style in zip(MODES, ("-", ":"), strict=True):
                    ys = [_rate(cut.get((f, r, mode, kind, ms), [])) for ms in pauses]
                    ax.plot(pauses, ys, style, marker="o", label=f"{f}/{r} {mode}")
        ax.axhline(5, color="k", ls="--", lw=0.8)
        ax.set(title=f"false cut-offs, {kind} pauses", xlabel="inserted pause (ms)", ylabel="%")
        ax.set_ylim(-2, 102)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    out = RESULTS / "turns.png"
    fig.savefig(out, dpi=110)
    print(f"\nplot: {out}")


if __name__ == "__main__":
    sys.exit(main())

"""Real-speech turn-taking material, shared by the end-of-turn model tests and ``bench_turns``.

Paused utterances are built from real recordings, not synthetic voices: faster-whisper's word
timestamps find a word after which a speaker could hesitate (a conjunction, preposition,
article or filler), and the clip is cut at the end of that word. The pause is filled with the
clip's own background (its quietest stretch, looped) rather than digital zeros, because a
microphone never delivers exact silence and the turn model has only ever heard real rooms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 16_000
Audio = npt.NDArray[np.float32]

#: Words after which a sentence cannot plausibly end (the paused set is cut after these).
HESITATION_WORDS = frozenset(
    {
        *("and", "but", "or", "nor", "because", "if", "when", "that", "than", "while"),
        *("the", "a", "an", "his", "her", "their", "my", "your", "our", "its", "this"),
        *("of", "to", "in", "into", "for", "with", "from", "by", "on", "at", "as", "about"),
        *("uh", "um", "er"),
    }
)


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds
    end: float


def load(path: Path) -> Audio:
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == RATE, f"{path.name}: {rate} Hz"
    return np.asarray(audio, dtype=np.float32)


def bare(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def word_timestamps(model: Any, audio: Audio) -> list[Word]:
    """Words with times from a faster-whisper ``WhisperModel`` (greedy, deterministic)."""
    segments, _ = model.transcribe(
        audio, language="en", beam_size=1, temperature=0.0, word_timestamps=True,
        condition_on_previous_text=False, vad_filter=False,
    )  # fmt: skip
    return [Word(w.word.strip(), w.start, w.end) for s in segments for w in s.words or []]


def background(audio: Audio, seconds: float = 0.2) -> Audio:
    """The clip's quietest ``seconds`` of audio (its room tone), by 20 ms frame energy."""
    n = int(seconds * RATE)
    frame = RATE // 50
    energy = np.convolve(audio**2, np.ones(frame) / frame, mode="valid")
    window = np.convolve(energy, np.ones(n - frame + 1), mode="valid")
    start = int(np.argmin(window))
    return audio[start : start + n].copy()


def room_tone(audio: Audio, ms: int) -> Audio:
    """``ms`` of the clip's background, looped with short cross-fades so it does not click."""
    tone = background(audio)
    need = ms * RATE // 1000
    reps = need // len(tone) + 2
    fade = RATE // 200  # 5 ms
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = tone.copy()
    for _ in range(reps):
        head = out[-fade:] * ramp[::-1] + tone[:fade] * ramp
        out = np.concatenate([out[:-fade], head, tone[fade:]])
    return out[:need].astype(np.float32)


def insert_pause(audio: Audio, at_s: float, ms: int) -> Audio:
    """The clip with ``ms`` of its own background inserted at ``at_s`` seconds."""
    cut = int(at_s * RATE)
    return np.concatenate([audio[:cut], room_tone(audio, ms), audio[cut:]]).astype(np.float32)


def hesitation_points(words: list[Word], *, min_after_s: float = 0.3) -> list[int]:
    """Indexes of words after which a pause would be mid-sentence (not the first or last word).

    The next word must start at least ``min_after_s`` before the clip ends, so there is speech
    to resume after the pause.
    """
    points = []
    for i, word in enumerate(words[1:-1], 1):
        if bare(word.text) in HESITATION_WORDS and words[i + 1].start > word.end - 0.01:
            points.append(i)
    return [i for i in points if words[-1].end - words[i + 1].start >= min_after_s]


def cut_point(audio: Audio, words: list[Word], index: int) -> float:
    """Where to cut after ``words[index]``: the quietest 10 ms near the word boundary.

    Whisper's word times are off by up to ~0.2 s, and in connected speech there is often no
    gap at all, so the cut is snapped to the energy minimum in the last 150 ms of the word
    (tiny.en's word ends tend to run late, into the next word).
    """
    word, nxt = words[index], words[index + 1]
    lo = max(word.start + 0.04, word.end - 0.15)  # tiny.en's word ends run late, not early
    hi = max(lo + 0.02, min(word.end + 0.03, nxt.end - 0.05))
    step = RATE // 100
    first, last = int(lo * RATE), int(hi * RATE)
    starts = range(first, max(first + 1, last - step), step // 2)
    energy = [float(np.mean(audio[s : s + step] ** 2)) for s in starts]
    best = starts[int(np.argmin(energy))]
    return (best + step // 2) / RATE


def phrase_gaps(words: list[Word], *, min_gap_s: float = 0.12) -> list[int]:
    """Indexes of words followed by a natural pause that are not hesitation words.

    These are the reader's own phrase and sentence boundaries inside one thought; stretching
    them is the "pause between sentences of one thought" case.
    """
    return [
        i
        for i in range(len(words) - 1)
        if words[i + 1].start - words[i].end >= min_gap_s
        and bare(words[i].text) not in HESITATION_WORDS
    ]

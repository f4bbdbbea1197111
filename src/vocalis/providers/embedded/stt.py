"""Whisper tiny.en through faster-whisper (CTranslate2, int8).

Whisper has no streaming mode, so a partial is a re-decode of the turn's growing buffer. To
keep that cheap and bounded, partials decode greedily, without temperature fallback or the VAD
filter, and see at most the last 30 s (one Whisper window). Finals see the whole turn. Both skip
timestamp tokens unless the audio is long enough for Whisper to need them to keep its place.

The encoder sees the turn plus 2 s, not a 30 s window (:class:`TrimmedWhisperModel`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from vocalis.providers.base import INPUT_RATE, Audio, STTOptions, Transcript
from vocalis.providers.scheduling import Priority
from vocalis.providers.workers import FIRST_WORDS, InferenceWorker

# faster-whisper imports huggingface_hub; make sure nothing can ever reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import WhisperModel

WINDOW_SAMPLES = 30 * INPUT_RATE  # one Whisper window
PARTIAL_MAX_SAMPLES = WINDOW_SAMPLES
#: Turns at least this long are decoded with timestamps (see ``_run``).
TIMESTAMPS_FROM_SAMPLES = 12 * INPUT_RATE
#: Frames of the zero padding kept after the audio (10 ms each): see TrimmedWhisperModel.
ENCODER_TAIL_FRAMES = 200
MIN_SAMPLES = INPUT_RATE // 10  # below 100 ms there is nothing to transcribe
ACCURATE_BEAM = 5
#: A final decode writes at most this many tokens per second of audio (plus a few): speech is
#: 3-5 tokens/s, and a hallucinated loop (". . . .") must not cost a second of the worker.
FINAL_TOKENS_PER_SECOND = 10
#: Whisper's 448-token context less the longest prompt faster-whisper keeps (223 tokens).
MAX_NEW_TOKENS = 224
_WORD = re.compile(r"\w")

_Decode = tuple[Audio, STTOptions, bool]  # audio, options, final


class TrimmedWhisperModel(WhisperModel):  # type: ignore[misc]  # faster-whisper is untyped
    """Whisper whose encoder sees the audio plus :data:`ENCODER_TAIL_FRAMES` of padding, not
    the whole 30 s window faster-whisper pads every segment to.

    Whisper was trained on 30 s windows, but the encoder's cost grows with its input and a
    spoken turn lasts a few seconds. CTranslate2 encodes any length up to the window, so the
    padding (log-mel columns that are exactly zero; real audio, silence included, never is)
    is cut to 2 s. Measured on the 20 clips of the speech set, each with 0.3 s of silence
    before and 0.2 s after as a turn has them (probe, greedy, 2 threads): a final decode took
    127 ms median instead of 398 ms, WER 4.0 % vs 4.6 % (1 s of padding: 4.3 %). Fed the bare
    clips, with no silence around the speech, Whisper repeated itself at the end of some of
    them (WER 18 % with 1 s of padding, 80 % with 0.3 s), so the turn's own pauses and the 2 s
    matter.
    """

    def encode(self, features: np.ndarray) -> Any:
        return super().encode(features[..., : encoder_frames(features)])


def encoder_frames(features: np.ndarray) -> int:
    """How many log-mel frames of ``features`` (``[batch,] mels, frames``) the encoder needs:
    those up to the last one that is not padding, plus :data:`ENCODER_TAIL_FRAMES`, an even
    count (the encoder's first convolution halves it), never more than there are."""
    used = np.any(features != 0, axis=tuple(range(features.ndim - 1)))
    columns = np.flatnonzero(used)
    content = int(columns[-1]) + 1 if columns.size else 0
    keep = content + ENCODER_TAIL_FRAMES
    keep += keep % 2
    return min(keep, int(features.shape[-1]))


class WhisperSTT:
    """Final and partial transcripts of every session's turns, through one shared worker.

    Finals go before partials: a final decides whether a turn ended, a partial only updates a
    live caption. Decodes run on one thread each, in two lanes: the second lane takes only
    finals, so a final never waits for a partial already running (a probe timing the
    recogniser's jobs during a single-caller bench_voice run: 6 of 43 finals did, 12-160 ms),
    and two callers' finals run at once. On the 2-core AVX2-only host (a probe, not a
    benchmark), eight finals of the speech set took 2.3-2.4 s one after another on one
    thread, 3.7-4.0 s on two threads (CTranslate2's threads wait on each other), 1.3-1.4 s on
    two lanes of one thread. Two lanes against one, same host: ``bench_voice --mode
    balanced`` back to back, final 472 vs 496 ms after the end of speech (P95 591 vs 645),
    commit -> first audio 134 vs 190 ms, v2v P50 1.12 vs 1.19 s; 4 callers at once
    (``bench_load --callers 4 --burst 4 --turns 4``, 3 runs each way alternating, 96 turns
    each): the median of the rows' P50 final 0.64 vs 0.69 s, of first synthesised audio 1.69
    vs 1.94 s, v2v P50 1.85 vs 1.90 s, P95 3.05 vs 2.89 s (rows' P95 2.09-3.36 s and one of
    7.01 s, whose slowest turn waited 4.4 s for its first LLM token, against 2.72-3.26 s; the
    next 3 runs with two lanes: P50 1.83, P95 2.94 s). faster-whisper transcribes one
    recording per call, so decodes are not batched.

    Measured and not done: finals queued together (several callers ending their turns at once)
    decoded as one batch through the CTranslate2 model (same features, prompt and suppressed
    tokens as ``transcribe``; the encoder sees the longest turn's length). In a probe, alone on
    one thread, four finals of 6-10 s took 0.80-0.89 s batched against 1.24-1.36 s one after
    another, WER on the 20 clips 4.0 % batched by fours against 3.7 %. Under load it did not
    pay: 4 callers at once (``bench_load --callers 4 --burst 4 --turns 4``), 3 runs each way
    alternating on an AVX2-only host, the final came later (rows' P50 0.60-0.79 s after the end
    of speech, median row 0.70, against 0.56-0.70 s, median 0.64: a batch ends when its
    longest member does) and v2v over 96 turns read P50 2.35 / P95 4.05 s against 2.10 / 3.65
    s without.
    """

    def __init__(self, model_dir: Path, *, threads: int = 1, lanes: int = 2) -> None:
        self._model = TrimmedWhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            num_workers=lanes,  # CTranslate2 runs as many calls at once as it has workers
            local_files_only=True,
        )
        self.worker: InferenceWorker[_Decode, Transcript] = InferenceWorker(
            "stt",
            lambda jobs: [self._run(*job) for job in jobs],
            hold_background=FIRST_WORDS.__bool__,  # a reply's first words come first
            lanes=lanes,
        )

    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        if len(audio) < MIN_SAMPLES:
            return Transcript(text="", confidence=None)
        if not final:
            audio = audio[-PARTIAL_MAX_SAMPLES:]
        priority = Priority.TURN_DECISION if final else Priority.BACKGROUND
        return await self.worker.submit((audio, options, final), priority)

    def _run(self, audio: Audio, options: STTOptions, final: bool) -> Transcript:
        kwargs: dict[str, Any] = {
            "language": "en",
            "task": "transcribe",
            "beam_size": ACCURATE_BEAM if (final and options.accurate) else 1,
            "temperature": 0.0,
            "vad_filter": False,
            # Without timestamp tokens Whisper skips much of a long turn (the four test clips
            # strung together: WER 0.08 at 12.6 s, 0.58 at 16 s, 0.85 at 25 s; with them 0.06).
            "without_timestamps": len(audio) < TIMESTAMPS_FROM_SAMPLES,
            "condition_on_previous_text": False,
            "initial_prompt": options.prompt or None,
            "hotwords": " ".join(options.keyterms) or None,
        }
        if final:
            seconds = min(len(audio), WINDOW_SAMPLES) / INPUT_RATE  # the budget is per window
            wanted = 16 + math.ceil(FINAL_TOKENS_PER_SECOND * seconds)
            kwargs["max_new_tokens"] = min(wanted, MAX_NEW_TOKENS)
        else:
            kwargs["max_new_tokens"] = 96
        segments, _info = self._model.transcribe(np.asarray(audio, dtype=np.float32), **kwargs)
        texts: list[str] = []
        logprobs: list[float] = []
        for segment in segments:
            texts.append(segment.text.strip())
            logprobs.append(segment.avg_logprob)
        text = " ".join(t for t in texts if t)
        if not _WORD.search(text):
            text = ""  # punctuation alone (". . .") is Whisper hearing nothing
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs and text else None
        return Transcript(text=text, confidence=confidence)

    async def warmup(self) -> None:
        silence = np.zeros(INPUT_RATE, dtype=np.float32)
        await self.worker.submit((silence, STTOptions(), True), Priority.TURN_DECISION)

    async def aclose(self) -> None:
        self.worker.close()

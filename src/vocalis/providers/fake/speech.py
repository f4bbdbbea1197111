"""Fake VAD, turn model, STT and TTS: pure numpy, instant, deterministic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from vocalis.audio import levels
from vocalis.providers.base import INPUT_RATE, Audio, STTOptions, Transcript

FRAME = 512  # 32 ms at 16 kHz, as Silero
SPEECH_RMS = 0.01
TTS_RATE = 24_000
TTS_MS_PER_CHAR = 50
_INCOMPLETE_ENDINGS = ("and", "but", "so", "um", "uh", "...")


def frame_rms(audio: Audio) -> Audio:
    return levels.frame_rms(audio, FRAME)


class _FakeVADStream:
    async def probabilities(self, audio: Audio) -> list[float]:
        return [float(x) for x in np.minimum(1.0, frame_rms(audio) / (2 * SPEECH_RMS))]


class FakeVAD:
    frame_samples = FRAME

    def open_stream(self) -> _FakeVADStream:
        return _FakeVADStream()


class FakeTurnModel:
    async def completion_probability(self, audio: Audio, transcript: str) -> float:
        text = transcript.strip().lower()
        return 0.0 if text.endswith(_INCOMPLETE_ENDINGS) else 1.0


class FakeSTT:
    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        speech_frames = int(np.count_nonzero(frame_rms(audio) >= SPEECH_RMS))
        if not speech_frames:
            return Transcript("", None)
        ms = speech_frames * FRAME * 1000 // INPUT_RATE
        # a final is closed with a full stop, as a punctuating recogniser (Whisper) closes a
        # finished sentence; the end-of-turn rule reads an open one as speech that broke off
        return Transcript(f"speech {ms} ms" + ("." if final else ""), 1.0)


class FakeTTS:
    sample_rate = TTS_RATE

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        n = TTS_RATE * TTS_MS_PER_CHAR * len(text) // 1000
        t = np.arange(n, dtype=np.float32) / TTS_RATE
        yield (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)

"""Whisper tiny.en through faster-whisper (CTranslate2, int8).

Whisper has no streaming mode, so a partial is a re-decode of the turn's growing buffer. To
keep that cheap and bounded, partials decode greedily, without timestamps, temperature fallback
or the VAD filter, and see at most the last 30 s (one Whisper window). Finals see the whole turn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from vocalis.providers.base import INPUT_RATE, Audio, STTOptions, Transcript
from vocalis.providers.scheduling import Priority
from vocalis.providers.workers import InferenceWorker

# faster-whisper imports huggingface_hub; make sure nothing can ever reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import WhisperModel

PARTIAL_MAX_SAMPLES = 30 * INPUT_RATE
MIN_SAMPLES = INPUT_RATE // 10  # below 100 ms there is nothing to transcribe
ACCURATE_BEAM = 5

_Decode = tuple[Audio, STTOptions, bool]  # audio, options, final


class WhisperSTT:
    """Final and partial transcripts of every session's turns, through one shared worker.

    Decodes run one at a time on the worker's thread (two at once on 2 cores only make both
    late), finals before partials: a final decides whether a turn ended, a partial only
    updates a live caption. faster-whisper transcribes one recording per call, so decodes are
    not batched.
    """

    def __init__(self, model_dir: Path, *, threads: int = 2) -> None:
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            num_workers=1,
            local_files_only=True,
        )
        self.worker: InferenceWorker[_Decode, Transcript] = InferenceWorker(
            "stt", lambda jobs: [self._run(*job) for job in jobs]
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
            "without_timestamps": True,
            "condition_on_previous_text": False,
            "initial_prompt": options.prompt or None,
            "hotwords": " ".join(options.keyterms) or None,
        }
        if not final:
            kwargs["max_new_tokens"] = 96
        segments, _info = self._model.transcribe(np.asarray(audio, dtype=np.float32), **kwargs)
        texts: list[str] = []
        logprobs: list[float] = []
        for segment in segments:
            texts.append(segment.text.strip())
            logprobs.append(segment.avg_logprob)
        text = " ".join(t for t in texts if t)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs and text else None
        return Transcript(text=text, confidence=confidence)

    async def warmup(self) -> None:
        silence = np.zeros(INPUT_RATE, dtype=np.float32)
        await self.worker.submit((silence, STTOptions(), True), Priority.TURN_DECISION)

    async def aclose(self) -> None:
        self.worker.close()

"""Piper (VITS) text-to-speech with the en_US joe-medium voice, 22.05 kHz mono."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from vocalis.providers.base import Audio, LLMError
from vocalis.providers.embedded._threads import onnx_session
from vocalis.providers.scheduling import WORK_PRIORITY
from vocalis.providers.workers import FIRST_WORDS, InferenceWorker

_SYNTHESIS = SynthesisConfig(volume=0.9)  # Piper peak-normalises each sentence; leave headroom


class PiperTTS:
    """Synthesizes one sentence at a time on one worker shared by every session (Piper is not
    incremental, and two syntheses at once on 2 cores only make both late).

    Measured and not done: a second lane for replies' first pieces (as the recogniser has for
    finals; espeak-ng under a lock, the network run beside another synthesis). 4 callers at
    once (``bench_load --callers 4 --burst 4 --turns 4``, 3 runs each way alternating, 96 turns
    each, AVX2-only host): a first piece reached the voice sooner (the rows' printed P50
    offsets, first audio less first piece: 0.19-0.27 s against 0.24-0.45 s), but the pieces
    themselves came later (median of the rows' P50 first piece 1.64 vs 1.54 s after the end
    of speech: the second synthesis takes the core the LLM writes on), and v2v read P50 1.89
    / P95 3.10 s against 1.83 / 2.94 s.

    A synthesis runs at the priority its reply gives it (:data:`WORK_PRIORITY`): a reply's
    first piece, or a piece its listener is about to run out of audio for, goes ahead of other
    replies' later sentences, which have the audio already playing as slack.
    """

    def __init__(self, model_path: Path, config_path: Path, *, threads: int = 1) -> None:
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        # Built by hand rather than with PiperVoice.load so the onnxruntime thread count is ours.
        self._voice = PiperVoice(session=onnx_session(model_path, threads), config=config)
        self.sample_rate: int = config.sample_rate
        self.worker: InferenceWorker[str, list[Audio]] = InferenceWorker(
            "tts",
            lambda texts: [self._run(text) for text in texts],
            hold_background=FIRST_WORDS.__bool__,  # a reply's first words come first
        )

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        if not text.strip():
            return
        try:
            chunks = await self.worker.submit(text, WORK_PRIORITY.get())
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"speech synthesis failed: {exc}", code="tts_error") from exc
        for chunk in chunks:
            yield chunk

    def _run(self, text: str) -> list[Audio]:
        # Piper splits the text into sentences itself and yields one chunk per sentence.
        return [
            np.asarray(chunk.audio_float_array, dtype=np.float32)
            for chunk in self._voice.synthesize(text, syn_config=_SYNTHESIS)
        ]

    async def aclose(self) -> None:
        self.worker.close()

    async def warmup(self) -> None:
        async for _ in self.synthesize("Hello.", "ivy"):
            pass

"""Piper (VITS) text-to-speech with the en_US joe-medium voice, 22.05 kHz mono."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import numpy as np
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from vocalis.providers.base import Audio, LLMError
from vocalis.providers.embedded._threads import Cancelled, ThreadStream, onnx_session

_SYNTHESIS = SynthesisConfig(volume=0.9)  # Piper peak-normalises each sentence; leave headroom


class PiperTTS:
    """Synthesizes one sentence at a time in a worker thread (Piper is not incremental)."""

    def __init__(self, model_path: Path, config_path: Path, *, threads: int = 1) -> None:
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        # Built by hand rather than with PiperVoice.load so the onnxruntime thread count is ours.
        self._voice = PiperVoice(session=onnx_session(model_path, threads), config=config)
        self.sample_rate: int = config.sample_rate
        self._lock = threading.Lock()

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        if not text.strip():
            return
        try:
            stream: ThreadStream[Audio] = ThreadStream(partial(self._run, text), name="piper-tts")
            async for chunk in stream:
                yield chunk
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"speech synthesis failed: {exc}", code="tts_error") from exc

    def _run(self, text: str, emit: Callable[[Audio], None], cancelled: Cancelled) -> None:
        # Piper splits the text into sentences itself and yields one chunk per sentence.
        with self._lock:
            for chunk in self._voice.synthesize(text, syn_config=_SYNTHESIS):
                if cancelled.is_set():
                    return
                emit(np.asarray(chunk.audio_float_array, dtype=np.float32))

    async def warmup(self) -> None:
        async for _ in self.synthesize("Hello.", "ivy"):
            pass

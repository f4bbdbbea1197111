"""Smart Turn v3.2: does the user's audio sound like a finished turn?

The model (a Whisper-encoder classifier) takes the last 8 s of 16 kHz audio as an 80x800
Whisper log-mel spectrogram and returns P(turn complete). Features come from faster-whisper's
log-mel extractor, after the preprocessing the model was trained with: left zero padding to
8 s and zero-mean unit-variance scaling of the waveform.

Checked against the reference pipeline (pipecat-ai 1.14.0, ``LocalSmartTurnAnalyzerV3`` and its
numpy Whisper extractor) on the 23 clips of the development speech set: the features agree to
within 1e-4 and the probabilities to the second decimal, so the extraction needs no change. What
differs is the audio the caller passes: the reference gives the model the turn up to *now*,
including the ~200 ms of silence its VAD waited, while cutting at the last speech frame hides the
pause from the model and lowers P(complete) on finished sentences (see ``bench_turns``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from faster_whisper.feature_extractor import FeatureExtractor

from vocalis.providers.base import INPUT_RATE, Audio
from vocalis.providers.embedded._threads import onnx_session
from vocalis.providers.scheduling import Priority
from vocalis.providers.workers import InferenceWorker

WINDOW_SECONDS = 8
WINDOW_SAMPLES = WINDOW_SECONDS * INPUT_RATE


def turn_features(
    audio: Audio, extractor: FeatureExtractor | None = None
) -> npt.NDArray[np.float32]:
    """The model's input for ``audio``: shape (1, 80, 800)."""
    extractor = extractor or FeatureExtractor(feature_size=80, chunk_length=WINDOW_SECONDS)
    tail = np.asarray(audio[-WINDOW_SAMPLES:], dtype=np.float32)
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    window[WINDOW_SAMPLES - len(tail) :] = tail
    window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    features = extractor(window, padding=0)[:, : extractor.nb_max_frames]
    return np.ascontiguousarray(features[np.newaxis], dtype=np.float32)


class SmartTurn:
    """Turn-completion classifier; one decision costs about 50 ms of one core.

    Shared by every session through one worker: decisions waiting at the same moment (several
    callers pausing together) run as one batched model call.
    """

    def __init__(self, model_path: Path) -> None:
        self._session = onnx_session(model_path, threads=1)
        self._extractor = FeatureExtractor(feature_size=80, chunk_length=WINDOW_SECONDS)
        self.worker: InferenceWorker[Audio, float] = InferenceWorker(
            "turn", self._predict_batch, max_batch=8
        )

    async def completion_probability(self, audio: Audio, transcript: str) -> float:
        # The transcript is not used by this audio-only model.
        if len(audio) == 0:
            return 0.0
        return await self.worker.submit(audio, Priority.TURN_DECISION, batch_key="turn")

    def _predict(self, audio: Audio) -> float:
        """One decision, in the caller's thread (benchmarks and tests call the model directly)."""
        return 0.0 if len(audio) == 0 else self._predict_batch([audio])[0]

    def _predict_batch(self, batch: list[Audio]) -> list[float]:
        features = np.concatenate([turn_features(audio, self._extractor) for audio in batch])
        (output,) = self._session.run(None, {"input_features": features})
        return [float(np.clip(p, 0.0, 1.0)) for p in output.reshape(len(batch), -1)[:, 0]]

    async def warmup(self) -> None:
        await self.completion_probability(np.zeros(INPUT_RATE, dtype=np.float32), "")

    async def aclose(self) -> None:
        self.worker.close()

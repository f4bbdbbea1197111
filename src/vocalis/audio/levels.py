"""Loudness of audio frames: where a voice fades, which the VAD's probability does not show."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]


def frame_rms(audio: Float32Array, frame: int) -> Float32Array:
    """RMS of each whole ``frame``-sample frame of ``audio`` (a partial last frame is left out,
    as the VAD leaves it)."""
    n = len(audio) // frame
    frames = audio[: n * frame].reshape(n, frame).astype(np.float64)
    rms: Float32Array = np.sqrt(np.mean(frames**2, axis=1)).astype(np.float32)
    return rms

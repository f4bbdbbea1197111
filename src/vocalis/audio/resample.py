"""Sample-rate conversion of mono float32 audio with soxr (streaming and one-shot)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

Float32Array = npt.NDArray[np.float32]

_EMPTY: Float32Array = np.zeros(0, dtype=np.float32)


def _mono_f32(audio: npt.ArrayLike) -> Float32Array:
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {samples.shape}")
    return samples


class StreamResampler:
    """Converts a continuous mono stream chunk by chunk, keeping filter state between chunks.

    The output lags the input by the filter delay; :meth:`flush` releases the tail at the end
    of the stream. Equal rates pass samples through untouched.
    """

    def __init__(self, from_rate: int, to_rate: int, quality: str = "HQ") -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._new_stream()

    def _new_stream(self) -> None:
        if self.from_rate != self.to_rate:
            self._stream = soxr.ResampleStream(
                self.from_rate, self.to_rate, 1, dtype="float32", quality=self._quality
            )

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    def process(self, chunk: npt.ArrayLike) -> Float32Array:
        """Resample the next chunk; may return fewer samples than the rate ratio suggests."""
        samples = _mono_f32(chunk)
        if self._stream is None:
            return samples
        out: Float32Array = self._stream.resample_chunk(samples, last=False)
        return out

    def flush(self) -> Float32Array:
        """Release the samples still inside the filter and end the stream (then reusable)."""
        if self._stream is None:
            return _EMPTY.copy()
        out: Float32Array = self._stream.resample_chunk(_EMPTY, last=True)
        self._new_stream()
        return out


def resample(
    audio: npt.ArrayLike, from_rate: int, to_rate: int, quality: str = "HQ"
) -> Float32Array:
    """Resample a whole mono clip at once; returns a float32 copy when the rates are equal."""
    samples = _mono_f32(audio)
    if from_rate == to_rate:
        return samples.copy()
    out: Float32Array = soxr.resample(samples, from_rate, to_rate, quality=quality).astype(
        np.float32, copy=False
    )
    return out

"""WAV file reading (any rate, channels, PCM 8/16/24/32-bit or float) and PCM16 writing.

Reading walks the RIFF chunks itself because the 3.11 stdlib ``wave`` module rejects float and
WAVE_FORMAT_EXTENSIBLE files; writing uses ``wave``.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from vocalis.audio.codecs import float_to_int16, int16_to_float
from vocalis.audio.resample import resample

Float32Array = npt.NDArray[np.float32]

_PCM_TAG = 1
_FLOAT_TAG = 3
_EXTENSIBLE_TAG = 0xFFFE


def _read_chunks(f: BinaryIO) -> tuple[bytes, bytes]:
    """The ``fmt `` and ``data`` chunk bodies of a RIFF/WAVE stream."""
    riff, _, wave_id = struct.unpack("<4sI4s", f.read(12))
    if riff != b"RIFF" or wave_id != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt: bytes | None = None
    while True:
        header = f.read(8)
        if len(header) < 8:
            raise ValueError("WAV file has no data chunk")
        chunk_id, size = struct.unpack("<4sI", header)
        if chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before fmt chunk")
            return fmt, f.read(size)  # a short read tolerates a wrong size in streamed files
        body = f.read(size + (size & 1))
        if chunk_id == b"fmt ":
            fmt = body[:size]


def _samples(fmt: bytes, data: bytes) -> tuple[Float32Array, int]:
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE_TAG and len(fmt) >= 26:
        (tag,) = struct.unpack("<H", fmt[24:26])  # first field of the sub-format GUID
    width = bits // 8
    if channels < 1 or block_align != channels * width:
        raise ValueError(f"unsupported WAV layout: {channels} ch, {bits} bit")
    data = data[: len(data) // block_align * block_align]
    if tag == _FLOAT_TAG and width in (4, 8):
        flat = np.frombuffer(data, dtype=f"<f{width}").astype(np.float32)
    elif tag == _PCM_TAG and width == 1:
        flat = ((np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128) / 128).astype(
            np.float32
        )
    elif tag == _PCM_TAG and width == 2:
        flat = int16_to_float(np.frombuffer(data, dtype="<i2"))
    elif tag == _PCM_TAG and width in (3, 4):
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
        padded = np.zeros((raw.shape[0], 4), dtype=np.uint8)
        padded[:, 4 - width :] = raw  # left-align so the sign bit lands in bit 31
        flat = (padded.view("<i4")[:, 0] / 2.0**31).astype(np.float32)
    else:
        raise ValueError(f"unsupported WAV encoding: format tag {tag}, {bits} bit")
    return flat.reshape(-1, channels), rate


def read_wav_frames(path: str | Path) -> tuple[Float32Array, int]:
    """All channels as float32 of shape ``(frames, channels)``, and the file's sample rate."""
    with open(path, "rb") as f:
        fmt, data = _read_chunks(f)
    return _samples(fmt, data)


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[Float32Array, int]:
    """Mono float32 samples (channels averaged), resampled to ``sample_rate`` when given.

    Returns the samples and their rate.
    """
    frames, rate = read_wav_frames(path)
    mono = frames[:, 0].copy() if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
    if sample_rate is None or sample_rate == rate:
        return mono, rate
    return resample(mono, rate, sample_rate), sample_rate


def write_wav(path: str | Path, audio: npt.ArrayLike, sample_rate: int) -> None:
    """Write PCM16 WAV from float (clipped to [-1, 1]) or int16 samples.

    ``audio`` is 1-D for mono or ``(frames, channels)``.
    """
    Path(path).write_bytes(wav_bytes(audio, sample_rate))


def wav_bytes(audio: npt.ArrayLike, sample_rate: int) -> bytes:
    """The PCM16 WAV file :func:`write_wav` writes, in memory (uploads, recordings)."""
    samples = np.asarray(audio)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise ValueError(f"expected 1-D or (frames, channels) audio, got shape {samples.shape}")
    pcm = samples.astype(np.int16) if samples.dtype == np.int16 else float_to_int16(samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()

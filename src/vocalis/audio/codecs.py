"""G.711 mu-law/A-law and PCM16LE conversion, and streaming wire decoders/encoders.

The G.711 tables follow the ITU-T G.711 reference algorithm (as in the classic Sun ``g711.c``):
mu-law quantises the 14 most significant bits, A-law the 13 most significant bits. Both
directions are table look-ups built once at import: 256 entries to decode, 65 536 entries
(indexed by the int16 sample reinterpreted as uint16) to encode.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from vocalis.audio.formats import PCM, PCMA, PCMU, format_of

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

_PCM_SCALE: Final = 32768.0


def _segment(magnitude: npt.NDArray[np.int32], segment_ends: list[int]) -> npt.NDArray[np.int32]:
    """Index of the first segment whose end is >= ``magnitude`` (len(ends) when above all)."""
    return np.searchsorted(np.asarray(segment_ends), magnitude, side="left").astype(np.int32)


def _build_ulaw_encode() -> UInt8Array:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, add bias
    seg = _segment(mag, [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)  # index by int16 viewed as uint16


def _build_alaw_encode() -> UInt8Array:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0x0F))
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE: Final = _build_ulaw_encode()
ALAW_ENCODE: Final = _build_alaw_encode()
ULAW_DECODE: Final = _build_ulaw_decode()
ALAW_DECODE: Final = _build_alaw_decode()
_ULAW_DECODE_F32: Final = (ULAW_DECODE / _PCM_SCALE).astype(np.float32)
_ALAW_DECODE_F32: Final = (ALAW_DECODE / _PCM_SCALE).astype(np.float32)


def ulaw_encode(pcm: Int16Array) -> bytes:
    """int16 samples -> G.711 mu-law bytes."""
    return ULAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_encode(pcm: Int16Array) -> bytes:
    """int16 samples -> G.711 A-law bytes."""
    return ALAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """G.711 mu-law bytes -> int16 samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """G.711 A-law bytes -> int16 samples."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def float_to_int16(audio: npt.ArrayLike) -> Int16Array:
    """float [-1, 1] -> int16, rounding and clipping out-of-range values."""
    scaled: npt.NDArray[np.float32] = np.rint(np.asarray(audio, dtype=np.float32) * _PCM_SCALE)
    return np.clip(scaled, -32768.0, 32767.0).astype(np.int16)


def int16_to_float(pcm: Int16Array) -> Float32Array:
    """int16 -> float32 in [-1, 1) (exact inverse of :func:`float_to_int16` on its range)."""
    return (np.asarray(pcm, dtype=np.float32) / np.float32(_PCM_SCALE)).astype(np.float32)


def pcm16_to_float(data: bytes) -> Float32Array:
    """PCM16LE bytes (even length) -> float32 samples."""
    return int16_to_float(np.frombuffer(data, dtype="<i2"))


def float_to_pcm16(audio: npt.ArrayLike) -> bytes:
    """float32 samples -> PCM16LE bytes."""
    return float_to_int16(audio).astype("<i2").tobytes()


class Decoder:
    """Streaming decoder of one input encoding into float32 samples at that encoding's rate.

    Chunks may split samples anywhere: for ``audio/pcm`` a trailing odd byte is kept and
    prepended to the next chunk (§7.3).
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.sample_rate = format_of(encoding).sample_rate
        self._carry = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes held back for the next chunk (0 or 1)."""
        return len(self._carry)

    def decode(self, chunk: bytes) -> Float32Array:
        if self.encoding == PCMU:
            return _ULAW_DECODE_F32[np.frombuffer(chunk, dtype=np.uint8)]
        if self.encoding == PCMA:
            return _ALAW_DECODE_F32[np.frombuffer(chunk, dtype=np.uint8)]
        data = self._carry + chunk if self._carry else chunk
        whole = len(data) & ~1
        self._carry = data[whole:]
        return pcm16_to_float(data[:whole])


class Encoder:
    """float32 samples at the output rate -> bytes of the output encoding.

    ``volume`` (0-100, mutable between chunks) is applied as linear gain ``volume/100`` before
    encoding; samples beyond full scale are clipped.
    """

    def __init__(self, encoding: str, volume: float = 100.0) -> None:
        self.encoding = encoding
        self.sample_rate = format_of(encoding).sample_rate
        self.volume = volume

    def encode(self, audio: npt.ArrayLike) -> bytes:
        samples = np.asarray(audio, dtype=np.float32)
        if self.volume != 100:
            samples = samples * np.float32(self.volume / 100)
        pcm = float_to_int16(samples)
        if self.encoding == PCMU:
            return ulaw_encode(pcm)
        if self.encoding == PCMA:
            return alaw_encode(pcm)
        assert self.encoding == PCM
        return pcm.astype("<i2").tobytes()

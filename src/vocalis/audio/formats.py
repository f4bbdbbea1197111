"""The three wire encodings of the protocol (§6.3) and byte/time arithmetic on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]

PCM: Final = "audio/pcm"
PCMU: Final = "audio/pcmu"
PCMA: Final = "audio/pcma"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """One wire encoding: mono, fixed rate, fixed bytes per sample."""

    encoding: Encoding
    sample_rate: int
    bytes_per_sample: int
    silence_byte: int  # the byte a run of digital silence is made of

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate * self.bytes_per_sample / 1000


FORMATS: Final[dict[str, AudioFormat]] = {
    PCM: AudioFormat(PCM, 24_000, 2, 0x00),
    PCMU: AudioFormat(PCMU, 8_000, 1, 0xFF),
    PCMA: AudioFormat(PCMA, 8_000, 1, 0xD5),
}

DEFAULT_ENCODING: Final[Encoding] = PCM


def format_of(encoding: str) -> AudioFormat:
    """The format of ``encoding``; ``ValueError`` for anything outside §6.3."""
    try:
        return FORMATS[encoding]
    except KeyError:
        raise ValueError(f"unsupported audio encoding: {encoding!r}") from None


def rate_of(encoding: str) -> int:
    """Sample rate in Hz fixed by ``encoding``."""
    return format_of(encoding).sample_rate


def bytes_per_ms(encoding: str) -> float:
    """Bytes per millisecond of audio (48.0 for PCM 24 kHz, 8.0 for G.711)."""
    return format_of(encoding).bytes_per_ms


def bytes_for_ms(encoding: str, ms: float) -> int:
    """Whole-sample byte count of ``ms`` milliseconds (e.g. 20 ms PCM -> 960)."""
    fmt = format_of(encoding)
    samples = round(fmt.sample_rate * ms / 1000)
    return samples * fmt.bytes_per_sample


def duration_ms(encoding: str, n_bytes: int) -> float:
    """Playing time of ``n_bytes`` of ``encoding`` in milliseconds."""
    return n_bytes / format_of(encoding).bytes_per_ms


def duration_s(encoding: str, n_bytes: int) -> float:
    """Playing time of ``n_bytes`` of ``encoding`` in seconds."""
    return duration_ms(encoding, n_bytes) / 1000


def silence(encoding: str, ms: float) -> bytes:
    """``ms`` milliseconds of digital silence in ``encoding``."""
    fmt = format_of(encoding)
    return bytes([fmt.silence_byte]) * bytes_for_ms(encoding, ms)

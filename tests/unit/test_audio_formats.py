import pytest

from vocalis.audio.formats import (
    FORMATS,
    PCM,
    PCMA,
    PCMU,
    bytes_for_ms,
    bytes_per_ms,
    duration_ms,
    duration_s,
    format_of,
    rate_of,
    silence,
)


def test_rates_follow_the_contract() -> None:
    assert rate_of(PCM) == 24_000
    assert rate_of(PCMU) == 8_000
    assert rate_of(PCMA) == 8_000
    assert set(FORMATS) == {"audio/pcm", "audio/pcmu", "audio/pcma"}


def test_unknown_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="audio/opus"):
        format_of("audio/opus")


@pytest.mark.parametrize(
    ("encoding", "per_ms", "chunk_20ms"), [(PCM, 48.0, 960), (PCMU, 8.0, 160), (PCMA, 8.0, 160)]
)
def test_byte_arithmetic(encoding: str, per_ms: float, chunk_20ms: int) -> None:
    assert bytes_per_ms(encoding) == per_ms
    assert bytes_for_ms(encoding, 20) == chunk_20ms
    assert duration_ms(encoding, chunk_20ms) == pytest.approx(20.0)
    assert duration_s(encoding, chunk_20ms * 50) == pytest.approx(1.0)


def test_pcm_byte_count_is_whole_samples() -> None:
    assert bytes_for_ms(PCM, 10) == 480
    assert bytes_for_ms(PCM, 0.03) % 2 == 0  # 0.72 samples rounds to one whole sample


@pytest.mark.parametrize(("encoding", "byte"), [(PCM, 0x00), (PCMU, 0xFF), (PCMA, 0xD5)])
def test_silence_bytes(encoding: str, byte: int) -> None:
    data = silence(encoding, 20)
    assert len(data) == bytes_for_ms(encoding, 20)
    assert set(data) == {byte}

import warnings

import numpy as np
import pytest

from vocalis.audio.codecs import (
    ALAW_DECODE,
    ULAW_DECODE,
    Decoder,
    Encoder,
    alaw_decode,
    alaw_encode,
    float_to_int16,
    float_to_pcm16,
    int16_to_float,
    pcm16_to_float,
    ulaw_decode,
    ulaw_encode,
)
from vocalis.audio.formats import PCM, PCMA, PCMU, silence

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_g711_reference_decode_values() -> None:
    # ITU-T G.711 decoder outputs scaled to 16 bits: mu-law 14-bit << 2, A-law 13-bit << 3.
    assert ULAW_DECODE[0xFF] == 0
    assert ULAW_DECODE[0x7F] == 0
    assert ULAW_DECODE[0x00] == -32124
    assert ULAW_DECODE[0x80] == 32124
    assert ULAW_DECODE[0xFE] == 8
    assert ULAW_DECODE[0xEF] == 132  # first value of segment 1
    assert ALAW_DECODE[0xD5] == 8
    assert ALAW_DECODE[0x55] == -8
    assert ALAW_DECODE[0xAA] == 32256
    assert ALAW_DECODE[0x2A] == -32256
    assert ALAW_DECODE[0xC5] == 264  # first value of segment 1


def test_g711_reference_encode_values() -> None:
    samples = np.array([0, -1, 32767, -32768, 8, -8], dtype=np.int16)
    assert ulaw_encode(samples) == bytes([0xFF, 0x7E, 0x80, 0x00, 0xFE, 0x7E])
    assert alaw_encode(samples) == bytes([0xD5, 0x55, 0xAA, 0x2A, 0xD5, 0x55])


def test_g711_decode_tables_are_odd_symmetric() -> None:
    codes = np.arange(256)
    assert np.array_equal(ULAW_DECODE[codes ^ 0x80], -ULAW_DECODE[codes])
    assert np.array_equal(ALAW_DECODE[codes ^ 0x80], -ALAW_DECODE[codes])


def test_every_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert alaw_encode(alaw_decode(codes)) == codes
    # 0x7F is mu-law's negative zero; zero encodes as positive zero 0xFF.
    expected = codes.replace(b"\x7f", b"\xff")
    assert ulaw_encode(ulaw_decode(codes)) == expected


def test_encode_is_monotonic() -> None:
    assert np.all(np.diff(ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32)) >= 0)
    assert np.all(np.diff(alaw_decode(alaw_encode(ALL_INT16)).astype(np.int32)) >= 0)


def test_round_trip_error_bounds() -> None:
    x = ALL_INT16.astype(np.int32)
    ulaw_err = np.abs(ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32) - x)
    alaw_err = np.abs(alaw_decode(alaw_encode(ALL_INT16)).astype(np.int32) - x)
    in_range = np.abs(x) <= 32124  # beyond mu-law's largest level the error is clipping
    assert np.all(ulaw_err[in_range] <= np.maximum(36, 0.036 * np.abs(x[in_range])))
    assert np.all(alaw_err <= np.maximum(16, np.abs(x) / 32))


def test_matches_stdlib_audioop_bit_for_bit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    raw = ALL_INT16.tobytes()
    assert ulaw_encode(ALL_INT16) == audioop.lin2ulaw(raw, 2)
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def test_sine_snr_through_g711() -> None:
    t = np.arange(8000) / 8000
    sine = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pcm = float_to_int16(sine)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        noise = dec(enc(pcm)).astype(np.float64) - pcm
        snr_db = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(noise**2))
        assert snr_db > 35


def test_pcm16_float_round_trip_is_exact() -> None:
    data = ALL_INT16.astype("<i2").tobytes()
    audio = pcm16_to_float(data)
    assert audio.dtype == np.float32
    assert audio.min() == -1.0
    assert audio.max() < 1.0
    assert float_to_pcm16(audio) == data


def test_float_to_int16_clips_and_rounds() -> None:
    out = float_to_int16(np.array([2.0, -2.0, 1.0, -1.0, 0.5 / 32768, 1.6 / 32768]))
    assert out.tolist() == [32767, -32768, 32767, -32768, 0, 2]
    assert np.array_equal(int16_to_float(np.array([16384], dtype=np.int16)), [0.5])


def test_pcm_decoder_keeps_trailing_odd_byte() -> None:
    decoder = Decoder(PCM)
    sample = np.array([1000, -2000], dtype="<i2").tobytes()
    first = decoder.decode(sample[:3])
    assert first.tolist() == [1000 / 32768]
    assert decoder.pending_bytes == 1
    second = decoder.decode(sample[3:])
    assert second.tolist() == [-2000 / 32768]
    assert decoder.pending_bytes == 0
    assert decoder.decode(b"").size == 0


def test_pcm_decoder_splits_anywhere() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(-32768, 32768, 2001, dtype=np.int16).astype("<i2").tobytes()
    decoder = Decoder(PCM)
    cuts = np.sort(rng.integers(0, len(data), 40))
    parts = np.split(np.frombuffer(data, dtype=np.uint8), cuts)
    out = np.concatenate([decoder.decode(p.tobytes()) for p in parts])
    assert np.array_equal(out, pcm16_to_float(data))
    assert decoder.sample_rate == 24_000


@pytest.mark.parametrize(("encoding", "table"), [(PCMU, ULAW_DECODE), (PCMA, ALAW_DECODE)])
def test_g711_decoder(encoding: str, table: np.ndarray) -> None:
    decoder = Decoder(encoding)
    assert decoder.sample_rate == 8_000
    out = decoder.decode(bytes([0, 0x55, 0xD5, 0xFF, 0x80]))
    assert out.dtype == np.float32
    assert np.array_equal(out, table[[0, 0x55, 0xD5, 0xFF, 0x80]] / 32768)
    assert decoder.pending_bytes == 0


@pytest.mark.parametrize("encoding", [PCM, PCMU, PCMA])
def test_encoder_silence_and_zero_volume(encoding: str) -> None:
    zeros = np.zeros(160 if encoding != PCM else 480, dtype=np.float32)
    assert Encoder(encoding).encode(zeros) == silence(encoding, 20)
    loud = np.full_like(zeros, 0.9)
    assert Encoder(encoding, volume=0).encode(loud) == silence(encoding, 20)


@pytest.mark.parametrize("encoding", [PCM, PCMU, PCMA])
def test_encoder_decoder_round_trip(encoding: str) -> None:
    t = np.arange(2400) / 24000
    audio = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    decoded = Decoder(encoding).decode(Encoder(encoding).encode(audio))
    assert decoded.shape == audio.shape
    assert np.max(np.abs(decoded - audio)) < (1e-4 if encoding == PCM else 0.01)


def test_encoder_volume_is_linear_gain_applied_before_clipping() -> None:
    encoder = Encoder(PCM, volume=50)
    out = np.frombuffer(encoder.encode(np.array([0.5, 1.5, -1.5], dtype=np.float32)), "<i2")
    assert out.tolist() == [8192, 24576, -24576]
    encoder.volume = 100
    out = np.frombuffer(encoder.encode(np.array([1.5, -1.5], dtype=np.float32)), "<i2")
    assert out.tolist() == [32767, -32768]


def test_encoder_g711_matches_functions() -> None:
    audio = np.linspace(-1, 1, 1001, dtype=np.float32)
    pcm = float_to_int16(audio)
    assert Encoder(PCMU).encode(audio) == ulaw_encode(pcm)
    assert Encoder(PCMA).encode(audio) == alaw_encode(pcm)

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from vocalis.audio.wav import read_wav, read_wav_frames, write_wav

DATA = Path(__file__).resolve().parents[1] / "data"


def _write_raw_wav(path: Path, tag: int, channels: int, rate: int, bits: int, data: bytes) -> None:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if tag == 0xFFFE:
        sub = 3 if bits in (32, 64) else 1
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub) + guid_tail
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk with pad byte
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_mono_float_round_trip(tmp_path: Path) -> None:
    audio = (0.4 * np.sin(np.linspace(0, 60, 8000))).astype(np.float32)
    path = tmp_path / "mono.wav"
    write_wav(path, audio, 16_000)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
    back, rate = read_wav(path)
    assert rate == 16_000
    assert back.dtype == np.float32
    assert np.max(np.abs(back - audio)) <= 1 / 32768


def test_int16_written_exactly(tmp_path: Path) -> None:
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    path = tmp_path / "pcm.wav"
    write_wav(path, pcm, 8_000)
    frames, rate = read_wav_frames(path)
    assert rate == 8_000
    assert np.array_equal(frames[:, 0] * 32768, pcm)


def test_stereo_write_read_and_downmix(tmp_path: Path) -> None:
    left = np.full(100, 0.5, dtype=np.float32)
    right = np.full(100, -0.25, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), 24_000)
    frames, rate = read_wav_frames(path)
    assert rate == 24_000
    assert frames.shape == (100, 2)
    assert np.allclose(frames[:, 0], 0.5)
    assert np.allclose(frames[:, 1], -0.25)
    mono, _ = read_wav(path)
    assert np.allclose(mono, 0.125)


def test_read_resamples_on_request(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    write_wav(path, np.zeros(24_000, dtype=np.float32), 24_000)
    audio, rate = read_wav(path, 16_000)
    assert rate == 16_000
    assert len(audio) == 16_000


def test_write_clips_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    write_wav(path, np.array([3.0, -3.0], dtype=np.float32), 8_000)
    frames, _ = read_wav_frames(path)
    assert frames[:, 0].tolist() == [32767 / 32768, -1.0]


@pytest.mark.parametrize("tag", [3, 0xFFFE])
def test_reads_float32_wav(tmp_path: Path, tag: int) -> None:
    samples = np.array([[0.25, -0.5], [1.0, 0.0]], dtype="<f4")
    path = tmp_path / "float.wav"
    _write_raw_wav(path, tag, 2, 44_100, 32, samples.tobytes())
    frames, rate = read_wav_frames(path)
    assert rate == 44_100
    assert np.array_equal(frames, samples)


def test_reads_24_bit_and_8_bit_pcm(tmp_path: Path) -> None:
    values = [0x400000, -0x800000, 1]  # 0.5, -1.0, 2**-23
    data = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    path24 = tmp_path / "p24.wav"
    _write_raw_wav(path24, 1, 1, 48_000, 24, data)
    frames, _ = read_wav_frames(path24)
    assert frames[:, 0].tolist() == [0.5, -1.0, 2.0**-23]
    path8 = tmp_path / "p8.wav"
    _write_raw_wav(path8, 1, 1, 8_000, 8, bytes([128, 0, 192]))
    frames, _ = read_wav_frames(path8)
    assert frames[:, 0].tolist() == [0.0, -1.0, 0.5]


def test_rejects_non_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="RIFF"):
        read_wav(path)


def test_test_data_matches_its_manifest() -> None:
    rows = (DATA / "manifest.tsv").read_text().splitlines()
    assert rows[0].split("\t") == [
        "file",
        "sample_rate",
        "seconds",
        "source",
        "reference_transcript",
    ]
    for row in rows[1:]:
        name, rate, seconds, _, transcript = row.split("\t")
        audio, file_rate = read_wav(DATA / name)
        assert file_rate == int(rate), name
        assert len(audio) / file_rate == pytest.approx(float(seconds), abs=1e-3), name
        rms = float(np.sqrt(np.mean(audio**2)))
        assert rms > 0.005, name  # not silent
        assert name.startswith("noise_") or transcript, name
    total = sum(p.stat().st_size for p in DATA.iterdir())
    assert total < 2_500_000

import numpy as np
import pytest

from vocalis.audio.resample import StreamResampler, resample


def _sine(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * rate / len(audio))


@pytest.mark.parametrize(("src", "dst"), [(24_000, 16_000), (8_000, 16_000), (16_000, 24_000)])
def test_stream_length_follows_rate_ratio(src: int, dst: int) -> None:
    audio = _sine(440, src, 1.0)
    resampler = StreamResampler(src, dst)
    chunk = src // 50  # 20 ms
    parts = [resampler.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    parts.append(resampler.flush())
    out = np.concatenate(parts)
    assert out.dtype == np.float32
    assert abs(len(out) - dst) <= 2
    assert _peak_hz(out, dst) == pytest.approx(440, abs=2)


def test_stream_matches_one_shot() -> None:
    audio = _sine(300, 24_000, 0.5)
    resampler = StreamResampler(24_000, 16_000)
    streamed = np.concatenate(
        [resampler.process(audio[i : i + 333]) for i in range(0, len(audio), 333)]
        + [resampler.flush()]
    )
    whole = resample(audio, 24_000, 16_000)
    n = min(len(streamed), len(whole))
    assert abs(len(streamed) - len(whole)) <= 2
    assert np.max(np.abs(streamed[100 : n - 100] - whole[100 : n - 100])) < 1e-3


def test_stream_is_reusable_after_flush() -> None:
    resampler = StreamResampler(8_000, 16_000)
    audio = _sine(200, 8_000, 0.25)
    first = np.concatenate([resampler.process(audio), resampler.flush()])
    second = np.concatenate([resampler.process(audio), resampler.flush()])
    assert np.array_equal(first, second)


def test_equal_rates_pass_through() -> None:
    resampler = StreamResampler(16_000, 16_000)
    assert resampler.passthrough
    audio = _sine(100, 16_000, 0.1)
    assert np.array_equal(resampler.process(audio), audio)
    assert resampler.flush().size == 0
    copy = resample(audio, 16_000, 16_000)
    assert np.array_equal(copy, audio)
    assert copy is not audio


def test_one_shot_length_and_dtype() -> None:
    out = resample(np.zeros(24_000, dtype=np.float64), 24_000, 8_000)
    assert out.dtype == np.float32
    assert len(out) == 8_000


def test_rejects_multichannel() -> None:
    with pytest.raises(ValueError, match="mono"):
        StreamResampler(8_000, 16_000).process(np.zeros((10, 2), dtype=np.float32))

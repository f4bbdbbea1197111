"""Microphone and speaker adapters of ``vocalis talk``, against a stand-in ``sounddevice``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from vocalis.audio import pcm16_to_float, read_wav
from vocalis.client.audio_io import Microphone, Speaker, WavRecorder
from vocalis.client.connection import SAMPLE_RATE

DEVICE_RATE = 48_000


class _InputStream:
    """Calls ``callback`` from a thread with 20 ms blocks of a 440 Hz tone, like PortAudio."""

    def __init__(self, samplerate: int, blocksize: int, callback: Any, **_: Any) -> None:
        self.rate, self.block, self.callback = samplerate, blocksize, callback
        self._stop = threading.Event()

    def __enter__(self) -> _InputStream:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        start = 0
        while not self._stop.wait(0.001):
            t = (start + np.arange(self.block)) / self.rate
            block = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
            self.callback(block, self.block, None, None)
            start += self.block


class _OutputStream:
    def __init__(self, samplerate: int, callback: Any, **_: Any) -> None:
        self.rate, self.callback = samplerate, callback

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def _fake_sounddevice() -> Any:
    return SimpleNamespace(
        query_devices=lambda kind: {"default_samplerate": float(DEVICE_RATE)},
        InputStream=_InputStream,
        OutputStream=_OutputStream,
    )


async def test_microphone_yields_pcm16_at_24k_from_a_48k_device() -> None:
    mic = Microphone(_fake_sounddevice(), chunk_ms=20)
    chunks: list[bytes] = []

    async def take() -> None:
        async for chunk in mic.chunks():
            chunks.append(chunk)
            if sum(len(c) for c in chunks) >= SAMPLE_RATE * 2:  # one second at 24 kHz
                return

    await asyncio.wait_for(take(), 10)
    audio = pcm16_to_float(b"".join(chunks))
    spectrum = np.abs(np.fft.rfft(audio[-SAMPLE_RATE // 2 :]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (SAMPLE_RATE // 2)
    assert abs(peak_hz - 440) < 5  # the tone survives resampling at the right pitch


def test_speaker_plays_queued_audio_and_flushes_on_barge_in() -> None:
    speaker = Speaker(_fake_sounddevice())
    stream = speaker._stream
    pcm = np.full(SAMPLE_RATE // 10, 8192, dtype="<i2").tobytes()  # 100 ms at a quarter scale
    for _ in range(5):
        speaker.play(pcm)  # 0.5 s at 24 kHz, about 1 s of 48 kHz samples after resampling
    out = np.zeros((4800, 1), dtype=np.float32)
    stream.callback(out, 4800, None, None)
    assert float(np.abs(out[2000:]).mean()) > 0.2  # playing (after the filter's ramp)
    speaker.flush()
    stream.callback(out, 4800, None, None)
    assert float(np.abs(out).max()) == 0.0  # silence right after a flush
    speaker.close()


def test_wav_recorder_writes_what_it_was_given(tmp_path: Path) -> None:
    recorder = WavRecorder()
    recorder.add(np.full(2400, 1000, dtype="<i2").tobytes())
    recorder.add(b"\x01")  # an odd byte is dropped, not a crash
    assert recorder.seconds > 0.09
    recorder.write(tmp_path / "a.wav")
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == SAMPLE_RATE and len(samples) == 2400

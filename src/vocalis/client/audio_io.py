"""Audio in and out for ``vocalis talk``: WAV files always, microphone and speaker when the
optional ``sounddevice`` package (PortAudio) is installed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from vocalis.audio import StreamResampler, float_to_pcm16, pcm16_to_float, read_wav, write_wav
from vocalis.client.connection import BYTES_PER_MS, SAMPLE_RATE


def wav_to_pcm16(path: str | Path) -> bytes:
    """A WAV file of any rate and channel count as PCM16 mono 24 kHz bytes."""
    samples, _ = read_wav(path, sample_rate=SAMPLE_RATE)
    return float_to_pcm16(samples)


def silence_pcm16(ms: int) -> bytes:
    return bytes(ms * BYTES_PER_MS)


class WavRecorder:
    """Collects the agent's PCM16 24 kHz audio and writes it as one WAV file."""

    def __init__(self) -> None:
        self._pcm = bytearray()

    def add(self, pcm: bytes) -> None:
        self._pcm += pcm

    @property
    def seconds(self) -> float:
        return len(self._pcm) / (SAMPLE_RATE * 2)

    def write(self, path: str | Path) -> None:
        samples = np.frombuffer(bytes(self._pcm[: len(self._pcm) & ~1]), dtype="<i2")
        write_wav(path, samples.astype(np.int16), SAMPLE_RATE)


def sounddevice_module() -> Any | None:
    """The ``sounddevice`` module, or ``None`` when it or PortAudio is missing."""
    try:
        import sounddevice
    except (ImportError, OSError):
        return None
    return sounddevice


class Microphone:
    """Captures the default input device and yields PCM16 24 kHz chunks of ``chunk_ms``."""

    def __init__(self, sd: Any, chunk_ms: int = 40) -> None:
        self._sd = sd
        self._rate = int(sd.query_devices(kind="input")["default_samplerate"])
        self._block = self._rate * chunk_ms // 1000
        self._resampler = StreamResampler(self._rate, SAMPLE_RATE)

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue()

        def callback(data: np.ndarray, frames: int, time: Any, status: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, data[:, 0].copy())

        with self._sd.InputStream(
            samplerate=self._rate,
            channels=1,
            dtype="float32",
            blocksize=self._block,
            callback=callback,
        ):
            while True:
                block = await queue.get()
                pcm = float_to_pcm16(self._resampler.process(block))
                if pcm:
                    yield pcm


class Speaker:
    """Plays PCM16 24 kHz on the default output device; :meth:`flush` drops what is queued
    (barge-in: the user started speaking)."""

    def __init__(self, sd: Any) -> None:
        self._rate = int(sd.query_devices(kind="output")["default_samplerate"])
        self._resampler = StreamResampler(SAMPLE_RATE, self._rate)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._lock = threading.Lock()
        self._stream = sd.OutputStream(
            samplerate=self._rate, channels=1, dtype="float32", callback=self._callback
        )
        self._stream.start()

    def play(self, pcm: bytes) -> None:
        samples = self._resampler.process(pcm16_to_float(pcm))
        with self._lock:
            self._buffer = np.concatenate([self._buffer, samples])

    def flush(self) -> None:
        with self._lock:
            self._buffer = np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def _callback(self, out: np.ndarray, frames: int, time: Any, status: Any) -> None:
        with self._lock:
            n = min(frames, len(self._buffer))
            out[:n, 0] = self._buffer[:n]
            out[n:, 0] = 0.0
            self._buffer = self._buffer[n:]

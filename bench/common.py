"""Shared bench plumbing: an in-process server on an ephemeral port, a paced client, statistics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from tests.speech import manifest, word_errors

from vocalis.audio import read_wav
from vocalis.server.background import background_server

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEECH = ROOT.parent / "shared" / "speech"
TEST_DATA = ROOT / "tests" / "data"
RATE = 24_000
CHUNK_MS = 20


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: benchmarks write PNG files, with no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """Lay out a matplotlib figure, write it as a PNG (its folder made if needed), free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def speech_dir() -> Path:
    """The 20-recording set beside the checkout (``../shared/speech``), else ``tests/data``.

    Found relative to this checkout, never at a machine's absolute path; the benchmarks print
    which one they used (:func:`speech_dir_note`), since the figures differ between the two.
    """
    return SHARED_SPEECH if SHARED_SPEECH.is_dir() else TEST_DATA


def speech_dir_note(folder: Path) -> str:
    which = "../shared/speech" if folder == SHARED_SPEECH else "tests/data (no ../shared/speech)"
    return f"speech set: {folder} [{which}]"


@contextlib.contextmanager
def running_server(**settings: Any) -> Iterator[tuple[str, Any]]:
    """An in-process server on an ephemeral port; yields (ws url, app state)."""
    with background_server(**settings) as (url, state):
        yield url, state


def load_24k(path: Path) -> np.ndarray:
    audio, _ = read_wav(path, RATE)
    return audio


def speech_bounds(audio: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    """(onset, end) in seconds of the clip's speech, by frame energy (-35 dBFS)."""
    frame = rate // 50
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.nonzero(rms > 0.0178)[0]
    if not len(loud):
        return 0.0, len(audio) / rate
    return loud[0] * frame / rate, (loud[-1] + 1) * frame / rate


def b64(audio: np.ndarray) -> str:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return base64.b64encode(pcm).decode()


class PacedStreamer:
    """Streams audio in 20 ms chunks at real-time pace; remembers when each sample left."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sent_samples = 0
        self.t0: float | None = None

    async def send(self, audio: np.ndarray) -> None:
        step = RATE * CHUNK_MS // 1000
        for i in range(0, len(audio), step):
            if self.t0 is None:
                self.t0 = time.perf_counter()
            due = self.t0 + self.sent_samples / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = audio[i : i + step]
            await self.ws.send(json.dumps({"type": "input.audio", "audio": b64(chunk)}))
            self.sent_samples += len(chunk)

    def wall_of_sample(self, sample: int) -> float:
        assert self.t0 is not None
        return self.t0 + sample / RATE


async def connect(url: str) -> Any:
    return await websockets.connect(url, max_size=16 << 20)


def is_fragment(reference: str) -> bool:
    """The reference is punctuated and stops without ending its sentence. LibriSpeech's
    references carry no punctuation at all, so its clips count as complete."""
    text = reference.rstrip().rstrip("\"')")
    punctuated = any(mark in text for mark in ".,;:!?")
    return punctuated and not text.endswith((".", "!", "?"))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


__all__ = ["manifest", "word_errors"]

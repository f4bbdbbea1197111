"""Input audio: the rate rule (§10.3), decoding, resampling to 16 kHz and VAD framing.

Memory per session is bounded: the ring keeps the last ``RING_SECONDS`` of 16 kHz float32 audio
(60 s = 3.8 MB), enough for the 300 ms pre-roll and the longest turn Whisper can decode (30 s).
"""

from __future__ import annotations

import numpy as np

from vocalis.audio import Decoder, StreamResampler, rate_of
from vocalis.providers.base import INPUT_RATE, Audio
from vocalis.session.clock import Clock

RING_SECONDS = 60


class AudioRing:
    """The most recent input audio, addressed by absolute sample index."""

    def __init__(self, seconds: int = RING_SECONDS) -> None:
        self._buf = np.zeros(seconds * INPUT_RATE, dtype=np.float32)
        self.end = 0  # absolute index one past the last sample written

    def write(self, samples: Audio) -> None:
        n = len(samples)
        size = len(self._buf)
        if n >= size:
            self._buf[:] = samples[-size:]
            self.end += n
            return
        start = self.end % size
        first = min(n, size - start)
        self._buf[start : start + first] = samples[:first]
        self._buf[: n - first] = samples[first:]
        self.end += n

    def read(self, start: int, end: int | None = None) -> Audio:
        end = self.end if end is None else min(end, self.end)
        start = max(start, self.end - len(self._buf), 0)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        size = len(self._buf)
        idx = np.arange(start, end) % size
        return self._buf[idx]


class InputStage:
    """Turns ``input.audio`` payloads into 16 kHz VAD frames, enforcing the rate rule."""

    def __init__(self, encoding: str, clock: Clock, max_ahead_ms: int, frame_samples: int) -> None:
        self._clock = clock
        self._max_ahead = max_ahead_ms / 1000
        self._frame = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self.ring = AudioRing()
        self.t_audio = clock.now()  # when all accepted audio would have played in real time
        self.accepted_seconds = 0.0
        self._stalled = False
        self.set_encoding(encoding)

    def set_encoding(self, encoding: str) -> None:
        self.encoding = encoding
        self._decoder = Decoder(encoding)
        self._resampler = StreamResampler(rate_of(encoding), INPUT_RATE)
        self._bytes_per_second = rate_of(encoding) * (2 if encoding == "audio/pcm" else 1)

    def restart_clock(self) -> None:
        """A resumed connection starts the rate rule afresh (§14.2)."""
        self.t_audio = self._clock.now()

    def accept(self, raw: bytes) -> tuple[Audio, bool]:
        """Decode what the rate rule admits; returns (whole 16 kHz frames, audio was dropped)."""
        now = self._clock.now()
        self._stalled = False
        start = max(self.t_audio, now)
        room = now + self._max_ahead - start
        duration = len(raw) / self._bytes_per_second
        dropped = False
        if duration > room + 1e-9:
            keep = max(0, int(room * self._bytes_per_second))
            if self.encoding == "audio/pcm":
                keep -= keep % 2
            raw = raw[:keep]
            dropped = True
            duration = len(raw) / self._bytes_per_second
        self.t_audio = start + duration
        self.accepted_seconds += duration
        samples = self._decoder.decode(raw)
        return self._frames(self._resampler.process(samples)), dropped

    def silence_gap(self, max_gap: float) -> Audio:
        """Frames of silence for a stalled stream: wall time beyond ``t_audio + max_gap``
        counts as silence at real-time rate (§10.2)."""
        now = self._clock.now()
        gap = now - self.t_audio
        if not self._stalled:
            if gap <= max_gap:
                return np.zeros(0, dtype=np.float32)
            self._stalled = True
        if gap <= 0:
            return np.zeros(0, dtype=np.float32)
        self.t_audio = now
        return self._frames(np.zeros(int(gap * INPUT_RATE), dtype=np.float32))

    def _frames(self, samples: Audio) -> Audio:
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        whole = len(samples) // self._frame * self._frame
        self._pending = samples[whole:]
        frames = samples[:whole]
        if whole:
            self.ring.write(frames)
        return frames

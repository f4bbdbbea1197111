"""Optional stereo recording of a session (§17.4): user on the left, agent on the right.

The user channel follows the input-audio timeline (16 kHz frames as processed, silence gaps
included); agent chunks are placed at their playout instant. Kept in memory as float32 and
capped at ``max_seconds`` per channel (30 min ≈ 170 MB of 16 kHz + 24 kHz float32), then encoded
once as a 24 kHz PCM16 WAV when the session ends.
"""

from __future__ import annotations

import numpy as np

from vocalis.audio import resample, wav_bytes
from vocalis.providers.base import INPUT_RATE, Audio

RATE = 24_000


class StereoRecording:
    def __init__(self, max_seconds: float = 1800.0) -> None:
        self._max_user = int(max_seconds * INPUT_RATE)
        self._max_agent = int(max_seconds * RATE)
        self._user: list[Audio] = []
        self._user_len = 0
        self._agent: list[tuple[int, Audio]] = []  # (offset in samples at 24 kHz, audio)

    def add_user(self, frames: Audio) -> None:
        room = self._max_user - self._user_len
        if room > 0 and len(frames):
            self._user.append(frames[:room].copy())
            self._user_len += min(room, len(frames))

    def add_agent(self, at_seconds: float, samples: Audio, rate: int) -> None:
        offset = int(max(0.0, at_seconds) * RATE)
        if offset >= self._max_agent or not len(samples):
            return
        audio = samples if rate == RATE else resample(samples, rate, RATE)
        self._agent.append((offset, audio[: self._max_agent - offset]))

    def to_wav(self) -> bytes:
        user = np.concatenate(self._user) if self._user else np.zeros(0, np.float32)
        left = resample(user, INPUT_RATE, RATE) if len(user) else user
        length = max([len(left)] + [off + len(a) for off, a in self._agent])
        stereo = np.zeros((length, 2), dtype=np.float32)
        stereo[: len(left), 0] = left
        for offset, audio in self._agent:
            stereo[offset : offset + len(audio), 1] += audio
        return wav_bytes(stereo, RATE)

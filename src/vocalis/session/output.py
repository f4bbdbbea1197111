"""One reply's outgoing audio: fixed-size chunks, real-time pacing and the playout position (§10.4).

Synthesised sentences arrive with their word timings; the pacer hands out 20 ms chunks no more
than ``output_lead_ms`` ahead of real time, measured from the first chunk (and from the end of
any gap where synthesis fell behind and the listener heard nothing). The playout position
(what the listener has heard) is ``min(audio sent, time since first chunk)``, frozen while the
reply is paused for a possible barge-in. Word deltas leave with the chunk holding their first
sample, so a word is never announced before its audio is sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np

from vocalis.providers.base import Audio
from vocalis.session.clock import Clock
from vocalis.session.text import TimedWord


@dataclass(frozen=True)
class OutChunk:
    samples: Audio
    start_ms: float  # position of the chunk's first sample in the reply's audio
    end_ms: float
    words: tuple[TimedWord, ...]  # words whose first sample lies in this chunk


class ReplyOutput:
    """Buffer + pacer state of one reply. Single consumer (the reply's pacing loop)."""

    def __init__(self, clock: Clock, rate: int, chunk_ms: int, lead_ms: int) -> None:
        self._clock = clock
        self.rate = rate
        self._chunk_samples = max(1, rate * chunk_ms // 1000)
        self._lead_ms = lead_ms
        self._pending = np.zeros(0, dtype=np.float32)  # produced, not yet cut into chunks
        self._produced_samples = 0
        self._chunked_samples = 0
        self._words: deque[TimedWord] = deque()
        self._ready: deque[OutChunk] = deque()
        self._closed = False
        self._changed = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.sent_ms = 0.0
        self.t_first: float | None = None
        self.paused = False
        #: Times the listener's audio ran dry mid-reply (synthesis fell behind), and for how
        #: long in all: a node that holds its callers but stutters is overloaded too.
        self.dry_spells = 0
        self.dry_ms = 0.0

    # ------------------------------------------------------------------ producer side
    @property
    def produced_ms(self) -> float:
        return self._produced_samples * 1000 / self.rate

    def add_sentence(self, samples: Audio, words: list[TimedWord]) -> None:
        """Append one sentence's audio with its words (timed on the reply's audio timeline)."""
        self._words.extend(words)
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        self._produced_samples += len(samples)
        self._cut(final=False)

    def close(self) -> None:
        """No more audio: the last chunk may be short."""
        self._cut(final=True)
        self._closed = True
        self._changed.set()

    def _cut(self, *, final: bool) -> None:
        n = self._chunk_samples
        while len(self._pending) >= n or (final and len(self._pending)):
            take = self._pending[:n]
            self._pending = self._pending[n:]
            start = self._chunked_samples * 1000 / self.rate
            self._chunked_samples += len(take)
            end = self._chunked_samples * 1000 / self.rate
            words: list[TimedWord] = []
            all_cut = final and len(self._pending) == 0  # (an array: no truth value if empty)
            while self._words and (self._words[0].start_ms < end or all_cut):
                words.append(self._words.popleft())
            self._ready.append(OutChunk(take, start, end, tuple(words)))
        if final and self._words and self._ready:  # words past the end (rounding): attach
            last = self._ready.pop()
            words_tail = last.words + tuple(self._words)
            self._ready.append(OutChunk(last.samples, last.start_ms, last.end_ms, words_tail))
            self._words.clear()
        self._changed.set()

    def take_unchunked_words(self) -> list[TimedWord]:
        """Words of a reply without audio (nothing to pace): all of them at once."""
        words = list(self._words)
        self._words.clear()
        return words

    # ------------------------------------------------------------------ consumer side
    async def next_chunk(self) -> OutChunk | None:
        """The next chunk once available and allowed by pacing; ``None`` at the end."""
        while not self._ready:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        chunk = self._ready[0]
        await self._wait_for_pacing(chunk.end_ms - chunk.start_ms)
        self._ready.popleft()
        return chunk

    async def _wait_for_pacing(self, chunk_ms: float) -> None:
        while True:
            if self.paused:
                await self._resumed.wait()
                continue
            ahead = self.sent_ms + chunk_ms - self._elapsed_ms()
            if ahead <= self._lead_ms + 1e-6:
                return
            await self._clock.sleep((ahead - self._lead_ms) / 1000)

    def mark_sent(self, chunk: OutChunk) -> None:
        now = self._clock.now()
        if self.t_first is None:
            self.t_first = now
        elif not self.paused and (now - self.t_first) * 1000 > self.sent_ms:
            # Underrun: synthesis fell behind and the listener's player ran dry. This chunk
            # starts playing when it arrives, so real time restarts from what was sent. Without
            # this, the pacer would "catch up" on the gap by sending seconds of audio in one
            # burst (a whole late sentence without yielding: over the outbox bound, close 1008,
            # in a 4-caller bench) and the playout position would count the gap as heard.
            self.dry_spells += 1
            self.dry_ms += (now - self.t_first) * 1000 - self.sent_ms
            self.t_first = now - self.sent_ms / 1000
        self.sent_ms = chunk.end_ms

    def _elapsed_ms(self) -> float:
        if self.t_first is None:
            return 0.0
        return (self._clock.now() - self.t_first) * 1000

    def runway_ms(self) -> float | None:
        """How much of the audio produced so far the listener has still to hear; None until
        the first chunk goes out (nothing is playing yet)."""
        if self.t_first is None:
            return None
        return self.produced_ms - self.playout_ms()  # what is heard was sent, so produced

    def playout_ms(self) -> float:
        """What the listener has heard (§10.4), frozen at what was sent while paused."""
        if self.paused:
            return self.sent_ms
        return min(self.sent_ms, self._elapsed_ms())

    async def wait_played_out(self) -> None:
        """Return once everything sent has played (pauses extend the wait)."""
        while True:
            if self.paused:
                await self._resumed.wait()
                continue
            remaining = self.sent_ms - self._elapsed_ms()
            if remaining <= 1e-6:
                return
            await self._clock.sleep(remaining / 1000)

    # ------------------------------------------------------------------ barge-in pause
    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._resumed.clear()

    def resume(self) -> None:
        """Continue where paused: what was sent counts as played, the lead starts afresh."""
        if self.paused:
            self.paused = False
            if self.t_first is not None:
                self.t_first = self._clock.now() - self.sent_ms / 1000
            self._resumed.set()

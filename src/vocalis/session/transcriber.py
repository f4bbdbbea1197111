"""The session's recogniser: runs the speech-to-text and turn-model calls turn-taking asks for.

It owns the tasks of those calls (at most one partial, one final and one barge-in candidate
decode at a time) and hands each result back to the :class:`~vocalis.session.turns.TurnTaker`
through the listener. How often partials are asked for is the turn taker's decision, from the
decode cost this module measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vocalis.providers.base import STT, Audio, STTOptions, Transcript, TurnModel
from vocalis.session.clock import Clock

Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


@dataclass(frozen=True)
class FinalResult:
    item_id: str
    transcript: Transcript
    probability: float | None  # the turn model's, when consulted


class Transcriber:
    def __init__(self, stt: STT, turn_model: TurnModel, clock: Clock, spawn: Spawn) -> None:
        self._stt = stt
        self._turn_model = turn_model
        self._clock = clock
        self._spawn = spawn
        self._partial: asyncio.Task[None] | None = None
        self._final: asyncio.Task[None] | None = None
        self._candidate: asyncio.Task[None] | None = None

    def partial(
        self,
        audio: Audio,
        options: STTOptions,
        done: Callable[[str, float], None],
    ) -> None:
        """Decode ``audio`` for a partial; ``done(text, seconds it took)``."""

        async def run() -> None:
            started = self._clock.now()
            result = await self._stt.transcribe(audio, options, final=False)
            done(result.text, self._clock.now() - started)

        self._partial = self._spawn(run())

    def final(
        self,
        audio: Audio,
        options: STTOptions,
        semantic: bool,
        done: Callable[[Transcript, float | None], None],
    ) -> None:
        """Decode ``audio`` as final; with ``semantic``, also ask the turn model (§11.3)."""

        async def run() -> None:
            transcript = await self._stt.transcribe(audio, options, final=True)
            probability = None
            text = transcript.text.strip()
            if text and semantic:
                probability = await self._turn_model.completion_probability(audio, text)
            done(transcript, probability)

        self._final = self._spawn(run())

    def candidate(self, audio: Audio, options: STTOptions, done: Callable[[str], None]) -> None:
        """Decode a barge-in candidate's speech."""

        async def run() -> None:
            result = await self._stt.transcribe(audio, options, final=False)
            done(result.text)

        self._candidate = self._spawn(run())

    async def final_now(self, audio: Audio, options: STTOptions) -> Transcript:
        """A final decode awaited in place (a turn closed by a disconnect)."""
        return await self._stt.transcribe(audio, options, final=True)

    # ------------------------------------------------------------------ cancelling
    def cancel_partial(self) -> None:
        _cancel(self._partial)

    def cancel_final(self) -> None:
        _cancel(self._final)

    def cancel_candidate(self) -> None:
        _cancel(self._candidate)


def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a decode unless it is the caller itself (its result is being delivered)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()

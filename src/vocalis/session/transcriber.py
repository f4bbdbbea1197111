"""The session's recogniser: runs the speech-to-text and turn-model calls turn-taking asks for.

It owns the tasks of those calls (at most one partial, one final, one turn-model and one
barge-in candidate call at a time) and hands each result back to the
:class:`~vocalis.session.turns.TurnTaker` through the listener. How often partials are asked
for is the turn taker's decision, from the decode cost this module measures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from vocalis.providers.base import STT, Audio, STTOptions, Transcript, TurnModel
from vocalis.session.clock import Clock

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


class Transcriber:
    def __init__(self, stt: STT, turn_model: TurnModel, clock: Clock, spawn: Spawn) -> None:
        self._stt = stt
        self._turn_model = turn_model
        self._clock = clock
        self._spawn = spawn
        self._partial: asyncio.Task[None] | None = None
        self._final: asyncio.Task[None] | None = None
        self._verdict: asyncio.Task[None] | None = None
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

    def final(self, audio: Audio, options: STTOptions, done: Callable[[Transcript], None]) -> None:
        """Decode ``audio`` (the turn's speech) as its final transcript."""

        async def run() -> None:
            done(await self._stt.transcribe(audio, options, final=True))

        self._final = self._spawn(run())

    def verdict(self, audio: Audio, text: str, done: Callable[[float | None], None]) -> None:
        """Ask the turn model whether the turn in ``audio`` is complete (§11.3). A failing
        model answers ``None``: the transcript then decides alone, and the session goes on."""

        async def run() -> None:
            try:
                probability: float | None = await self._turn_model.completion_probability(
                    audio, text
                )
            except Exception:
                log.warning("turn model failed; judging the turn on its transcript", exc_info=True)
                probability = None
            done(probability)

        self._verdict = self._spawn(run())

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

    def cancel_verdict(self) -> None:
        _cancel(self._verdict)

    def cancel_candidate(self) -> None:
        _cancel(self._candidate)


def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a decode unless it is the caller itself (its result is being delivered)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()

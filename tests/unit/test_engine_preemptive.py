"""Preemptive replies: generated while the end-of-turn silence runs, released at the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest

from tests.harness import Harness, HeardTTS, silence, tone
from vocalis.providers.base import LLMEvent, LLMRequest, TextDelta
from vocalis.providers.fake import build_fake_providers


class SlowLLM:
    """Thinks for ``delay`` virtual seconds, then echoes the last user message."""

    def __init__(self, harness_clock: object, delay: float) -> None:
        self.clock = harness_clock
        self.delay = delay
        self.requests: list[str] = []

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        last = request.messages[-1].content
        self.requests.append(last)
        await self.clock.sleep(self.delay)  # type: ignore[attr-defined]
        yield TextDelta(f"Echo {last}.")


def _harness(delay: float) -> tuple[Harness, SlowLLM]:
    h = Harness()
    llm = SlowLLM(h.clock, delay)
    h.manager.providers = replace(build_fake_providers(), llm=llm)
    return h, llm


async def test_reply_is_ready_when_the_turn_ends() -> None:
    h, llm = _harness(delay=0.5)
    await h.start()
    await h.speak(800, then_silence_ms=1200)
    await h.until("reply.done")
    t = h.transport
    stopped = t.last("input.speech.stopped")["timestamp"]
    first_audio = t.of("reply.audio")[0]["timestamp"]
    # the 0.5 s of model time was spent during the 800 ms of silence, not after it
    assert first_audio - stopped < 0.05
    assert t.types().index("transcript.user") < t.types().index("reply.started")
    assert len(llm.requests) == 1
    await h.close()


async def test_model_time_shows_when_the_silence_is_too_short_to_hide_it() -> None:
    h, _ = _harness(delay=0.5)
    await h.start({"input": {"turn_detection": {"min_silence": 100, "max_silence": 200}}})
    await h.speak(800, then_silence_ms=1200)
    await h.until("reply.done")
    t = h.transport
    gap = t.of("reply.audio")[0]["timestamp"] - t.last("input.speech.stopped")["timestamp"]
    assert gap > 0.3  # 100 ms of silence hides little of the 0.5 s the model takes
    await h.close()


async def test_speech_resuming_drops_the_early_reply() -> None:
    h, llm = _harness(delay=0.2)
    await h.start()
    await h.stream(np.concatenate([tone(600), silence(400), tone(600), silence(1200)]))
    await h.until("reply.done")
    t = h.transport
    assert len(t.of("reply.started")) == 1
    assert t.types().count("input.speech.started") == 1
    final = t.last("transcript.user")["text"]
    assert t.last("transcript.agent")["text"] == f"Echo {final}."
    assert llm.requests[-1] == final
    await h.close()


class WordByWordLLM:
    """Writes one word every ``every`` virtual seconds, as a local model streams."""

    def __init__(self, harness_clock: object, every: float) -> None:
        self.clock = harness_clock
        self.every = every

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        for word in ["One", "two", "three", "four", "five", "six", "seven", "eight", "nine."]:
            await self.clock.sleep(self.every)  # type: ignore[attr-defined]
            yield TextDelta(word + " ")


@pytest.mark.parametrize(
    ("min_silence", "first_piece"),
    [
        # the turn ends while a sixth word would still be coming: cut short, ready sooner
        (600, "One two three"),
        # time to spare: the longer, more natural first piece
        (1500, "One two three four five six"),
    ],
)
async def test_an_early_reply_cuts_its_first_piece_short_when_the_turn_is_about_to_end(
    min_silence: int, first_piece: str
) -> None:
    h = Harness()
    tts = HeardTTS()
    h.manager.providers = replace(
        build_fake_providers(), llm=WordByWordLLM(h.clock, every=0.05), tts=tts
    )
    turn = {"min_silence": min_silence, "max_silence": min_silence + 1000}
    await h.start({"input": {"turn_detection": turn}})
    await h.speak(800, then_silence_ms=min_silence + 400)
    await h.until("reply.done")
    # at 600: six words were written 0.35 s into the reply, before the commit, but the
    # turn was due to end within FIRST_PIECE_LEAD_S by then
    assert tts.said[0] == first_piece
    await h.close()

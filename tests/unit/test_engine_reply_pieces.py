"""A reply's later pieces: cut early and synthesised first when the listener is about to run dry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from tests.harness import Harness, HeardTTS
from vocalis.providers.base import Audio, TextDelta
from vocalis.providers.fake import build_fake_providers
from vocalis.providers.scheduling import WORK_PRIORITY, Priority
from vocalis.session.clock import FakeClock

TEXT = "Sure thing. I can book a table for two people at eight tonight."


class PacedWriter:
    """A model that writes a word every ``word_s`` of virtual time (0: all at once)."""

    def __init__(self, clock: FakeClock, word_s: float) -> None:
        self.clock = clock
        self.word_s = word_s

    async def stream(self, request: Any) -> AsyncIterator[TextDelta]:
        words = TEXT.split(" ")
        for i, word in enumerate(words):
            if i and self.word_s:
                await self.clock.sleep(self.word_s)
            yield TextDelta(word if i == len(words) - 1 else word + " ")


class PriorityTTS(HeardTTS):
    """The fake voice, remembering the priority each synthesis was started with."""

    def __init__(self) -> None:
        super().__init__()
        self.priorities: list[Priority] = []

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        self.priorities.append(WORK_PRIORITY.get())
        async for audio in super().synthesize(text, voice):
            yield audio


async def reply_with(word_s: float) -> PriorityTTS:
    tts = PriorityTTS()
    h = Harness(providers=replace(build_fake_providers(), tts=tts))
    await h.start()
    h.session()._llm = PacedWriter(h.clock, word_s)
    await h.send({"type": "reply.create"})
    await h.until("reply.done")
    assert h.transport.last("transcript.agent")["text"] == TEXT
    await h.close()
    return tts


async def test_a_model_ahead_of_the_voice_speaks_whole_sentences_in_the_background() -> None:
    tts = await reply_with(word_s=0)
    assert tts.said == ["Sure thing.", TEXT.removeprefix("Sure thing. ")]
    # the first piece stands between the caller and any sound; the next has it as slack
    assert tts.priorities == [Priority.FIRST_AUDIO, Priority.BACKGROUND]


async def test_a_model_behind_the_voice_gets_short_urgent_pieces() -> None:
    # the fake voice says "Sure thing." in 0.55 s; the model writes a word every 0.3 s
    tts = await reply_with(word_s=0.3)
    assert tts.said[:2] == ["Sure thing.", "I can"]
    assert " ".join(tts.said) == TEXT
    assert len(tts.said) > 3
    # after the first piece, each is needed before the audio runs out: after first pieces
    # (other callers wait for any sound), before later sentences with audio to spare
    assert tts.priorities[0] is Priority.FIRST_AUDIO
    assert set(tts.priorities[1:]) == {Priority.NEXT_AUDIO}

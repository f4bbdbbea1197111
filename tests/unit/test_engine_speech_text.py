"""Replies are spoken: the voice gets speech-ready text, the transcript the model's text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from tests.harness import Harness, HeardTTS
from vocalis.providers.base import TextDelta
from vocalis.providers.fake import build_fake_providers


class Writes:
    """A model that writes markdown, as small models do."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def stream(self, request: Any) -> AsyncIterator[TextDelta]:
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield TextDelta(word if i == len(words) - 1 else word + " ")


async def test_markdown_is_not_spoken_and_numbers_are_said_as_words() -> None:
    tts = HeardTTS()
    h = Harness(providers=replace(build_fake_providers(), tts=tts))
    await h.start()
    h.session()._llm = Writes("**Sure!** It costs $5 and opens at 9:30 🙂")
    await h.send({"type": "reply.create"})
    await h.until("reply.done")
    spoken = " ".join(tts.said)
    assert "*" not in spoken and "$" not in spoken and "🙂" not in spoken
    assert "five dollars" in spoken and "nine thirty" in spoken
    text = h.transport.last("transcript.agent")["text"]
    assert text == "**Sure!** It costs $5 and opens at 9:30 🙂"
    deltas = "".join(e["delta"] for e in h.transport.of("transcript.agent.delta"))
    assert deltas == text
    assert h.session().history.entries[-1].text == text
    await h.close()

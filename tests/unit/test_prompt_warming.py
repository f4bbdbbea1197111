"""Prompt warm-ups while the user speaks: the policy alone, then through the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.harness import Harness
from vocalis.providers.base import LLMEvent, LLMRequest
from vocalis.providers.fake import build_fake_providers
from vocalis.providers.fake.llm import FakeLLM
from vocalis.session.prompt_warming import PromptWarmer
from vocalis.settings import Settings


def test_one_warm_up_in_flight_and_the_latest_text_next() -> None:
    warmer = PromptWarmer(every_s=1.0)
    assert warmer.offer("what is", 0.0) == "what is"
    assert warmer.offer("what is the", 1.5) is None  # the first one is still running
    assert warmer.offer("what is the weather", 1.8) is None
    assert warmer.finished(2.0) == "what is the weather"  # latest text, stale one skipped
    assert warmer.finished(2.5) is None  # nothing newer


def test_warm_ups_are_spaced_and_never_repeat_a_text() -> None:
    warmer = PromptWarmer(every_s=1.0)
    assert warmer.offer("hello", 0.0) == "hello"
    assert warmer.finished(0.2) is None
    assert warmer.offer("hello there", 0.5) is None  # too soon after the last one
    assert warmer.offer("hello there", 1.1) == "hello there"  # due now: the kept text
    assert warmer.finished(1.2) is None
    assert warmer.offer("hello there", 3.0) is None  # unchanged
    assert warmer.offer("  ", 3.0) is None


def test_a_decided_turn_drops_what_was_waiting() -> None:
    warmer = PromptWarmer(every_s=1.0)
    assert warmer.offer("book a table", 0.0) == "book a table"
    assert warmer.offer("book a table for two", 0.3) is None
    warmer.turn_ended()
    assert warmer.finished(2.0) is None
    assert warmer.offer("book a table", 2.0) == "book a table"  # a new turn may repeat words


def test_a_warm_up_that_could_not_be_sent_leaves_nothing_in_flight() -> None:
    """The session's model lost its ``warm`` (a session update), or the session stopped."""
    warmer = PromptWarmer(every_s=1.0)
    assert warmer.offer("what is", 0.0) == "what is"
    assert warmer.offer("what is the", 2.0) is None
    warmer.turn_ended()
    assert warmer.finished(2.0) is None  # the waiting text is not sent instead
    assert warmer.offer("next turn", 3.5) == "next turn"


class WarmableLLM(FakeLLM):
    """The fake model plus the ``prefill`` and ``warm`` hooks the embedded one has."""

    def __init__(self) -> None:
        self.prefilled: list[LLMRequest] = []
        self.streamed: list[LLMRequest] = []

    async def prefill(self, request: LLMRequest) -> None:
        self.prefilled.append(request)

    async def warm(self, request: LLMRequest) -> bool:
        await self.prefill(request)
        return True

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        self.streamed.append(request)
        async for event in super().stream(request):
            yield event


async def test_the_prompt_is_warmed_with_partials_while_the_user_speaks() -> None:
    llm = WarmableLLM()
    providers = build_fake_providers()
    providers.llm = llm
    harness = Harness(Settings(providers="fake", legacy_ready_timeout_seconds=0), providers)
    await harness.start({"instructions": "Be brief."})
    at_start = len(llm.prefilled)  # the system prompt, cached at session start
    await harness.speak(3000)
    warmed = llm.prefilled[at_start:]
    partials = [e["text"] for e in harness.transport.of("transcript.user.delta")]
    assert len(partials) >= 4 and 2 <= len(warmed) < len(partials)  # spaced, not every one
    for request in warmed:
        assert request.messages[0].role == "system"
        assert request.messages[-1].role == "user"
        assert request.messages[-1].content in partials
    await harness.until("reply.done")
    reply = llm.streamed[-1]
    # the warm-ups rendered what the reply sends, up to the user's words
    assert reply.messages[:-1] == warmed[-1].messages[:-1]
    assert reply.tools == warmed[-1].tools
    assert len(llm.prefilled) == at_start + len(warmed)  # none once the turn was decided
    await harness.close()

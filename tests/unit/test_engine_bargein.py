"""Barge-in (§11.4–11.5) on virtual time: what stops, what is reported, what is remembered."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tests.harness import Harness, silence, tone
from vocalis.providers.base import Audio, STTOptions, Transcript
from vocalis.providers.fake import build_fake_providers
from vocalis.providers.fake.speech import FakeSTT

LONG = "Our return policy lets you send items back within thirty days of delivery."


class ScriptedSTT:
    """Recognises every speech segment as ``text`` (the fake STT only counts milliseconds)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._energy = FakeSTT()

    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        heard = await self._energy.transcribe(audio, options, final=final)
        return Transcript(self.text if heard.text else "", 1.0)


async def _speaking(h: Harness, text: str = LONG, **session: object) -> None:
    await h.start({"greeting": text, **session})
    await h.wait(1.0)  # the greeting is playing
    assert h.transport.of("reply.started") and not h.transport.of("reply.done")


async def test_barge_in_stops_audio_and_reports_played_text(harness: Harness) -> None:
    await _speaking(harness)
    audio_before = len(harness.transport.of("reply.audio"))
    await harness.stream(tone(400))
    t = harness.transport
    types = t.types()
    i = types.index("input.speech.started")
    assert types[i : i + 3] == ["input.speech.started", "transcript.agent", "reply.done"]
    agent = t.last("transcript.agent")
    assert agent["interrupted"] is True
    assert t.last("reply.done")["status"] == "interrupted"
    played = agent["text"]
    assert played and LONG.startswith(played) and played != LONG
    reply_id = agent["reply_id"]
    n_audio = len([e for e in t.of("reply.audio") if e["reply_id"] == reply_id])
    await harness.wait(3)
    assert len([e for e in t.of("reply.audio") if e["reply_id"] == reply_id]) == n_audio
    assert n_audio >= audio_before
    # only the played words are in the history
    entries = harness.session().history.entries
    assert [e.text for e in entries if e.item_id == agent["item_id"]] == [played]


async def test_user_turn_continues_after_barge_in(harness: Harness) -> None:
    await _speaking(harness)
    await harness.stream(np.concatenate([tone(900), silence(1200)]))
    await harness.until("transcript.user")
    types = harness.transport.types()
    assert types.count("input.speech.started") == 1
    assert types.index("reply.done") < types.index("input.speech.stopped")
    await harness.until("reply.done")


async def test_noise_shorter_than_interruption_delay_does_not_interrupt(harness: Harness) -> None:
    await _speaking(harness)
    await harness.stream(np.concatenate([tone(120), silence(300)]))
    await harness.wait(6)
    t = harness.transport
    assert not t.of("input.speech.started")
    assert t.last("reply.done")["status"] == "completed"
    assert t.last("transcript.agent")["text"] == LONG


async def test_backchannel_pauses_then_resumes_without_events() -> None:
    providers = replace(build_fake_providers(), stt=ScriptedSTT("uh huh"))
    h = Harness(providers=providers)
    await _speaking(h)
    await h.stream(np.concatenate([tone(500), silence(300)]))
    await h.wait(8)
    t = h.transport
    assert not t.of("input.speech.started")
    assert t.last("reply.done")["status"] == "completed"
    assert t.last("transcript.agent")["text"] == LONG
    assert [e.text for e in h.session().history.entries] == [LONG]
    await h.close()


async def test_backchannel_word_to_a_silent_agent_is_a_turn() -> None:
    providers = replace(build_fake_providers(), stt=ScriptedSTT("okay"))
    h = Harness(providers=providers)
    await h.start()
    await h.stream(np.concatenate([tone(500), silence(1500)]))
    await h.until("transcript.user")
    assert h.transport.last("transcript.user")["text"] == "okay"
    await h.close()


async def test_real_word_interrupts_after_backchannel() -> None:
    providers = replace(build_fake_providers(), stt=ScriptedSTT("wait actually"))
    h = Harness(providers=providers)
    await _speaking(h)
    await h.stream(tone(600))
    assert h.transport.last("reply.done")["status"] == "interrupted"
    await h.close()


async def test_interrupt_response_false_ignores_speech(harness: Harness) -> None:
    await _speaking(harness, input={"turn_detection": {"interrupt_response": False}})
    await harness.stream(np.concatenate([tone(800), silence(300)]))
    await harness.wait(6)
    assert harness.transport.last("reply.done")["status"] == "completed"
    assert not harness.transport.of("input.speech.started")


async def test_protected_greeting_cannot_be_interrupted(harness: Harness) -> None:
    await _speaking(harness, input={"turn_detection": {"uninterruptible_turns": ["greeting"]}})
    await harness.stream(tone(800))
    await harness.wait(6)
    assert harness.transport.of("reply.done")[0]["status"] == "completed"


async def test_reply_cancel_interrupts_like_barge_in(harness: Harness) -> None:
    await _speaking(harness)
    reply_id = harness.transport.last("reply.started")["reply_id"]
    await harness.send({"type": "reply.cancel", "reply_id": reply_id})
    t = harness.transport
    assert t.types()[-2:] == ["transcript.agent", "reply.done"]
    assert t.last("reply.done")["status"] == "interrupted"
    assert not t.of("input.speech.started")
    # a finished reply is ignored silently; an unknown id is an error
    await harness.send({"type": "reply.cancel", "reply_id": reply_id})
    assert not t.of("session.error")
    await harness.send({"type": "reply.cancel", "reply_id": "resp_" + "0" * 32})
    assert t.last("session.error")["message"] == f"Unknown reply_id 'resp_{'0' * 32}'"


async def test_pending_user_speech_reply_is_merged_with_next_turn(harness: Harness) -> None:
    """§11.2: speech before the reply starts discards it; one reply answers both turns."""
    await harness.start({"input": {"turn_detection": {"min_silence": 200, "max_silence": 400}}})
    slow = harness.session()

    async def never(*_: object, **__: object):  # LLM that thinks for a long time
        await harness.clock.sleep(5)
        yield  # pragma: no cover

    first_llm = slow._llm
    slow._llm = type("Slow", (), {"stream": staticmethod(never)})()
    await harness.stream(np.concatenate([tone(500), silence(450)]))
    assert harness.transport.of("transcript.user")
    slow._llm = first_llm
    await harness.stream(np.concatenate([tone(500), silence(450)]))
    await harness.until("reply.done")
    assert len(harness.transport.of("transcript.user")) == 2
    assert len(harness.transport.of("reply.started")) == 1


class SlowScriptedSTT(ScriptedSTT):
    """Like ScriptedSTT, but recognition takes ``delay`` virtual seconds (as Whisper does)."""

    def __init__(self, text: str, clock: object, delay: float) -> None:
        super().__init__(text)
        self.clock = clock
        self.delay = delay

    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        await self.clock.sleep(self.delay)  # type: ignore[attr-defined]
        return await super().transcribe(audio, options, final=final)


async def _short_phrase_over_agent(text: str) -> Harness:
    h = Harness()
    h.manager.providers = replace(
        build_fake_providers(), stt=SlowScriptedSTT(text, h.clock, delay=0.4)
    )
    await _speaking(h)
    # 300 ms of speech, then silence: the segment ends before its transcript is ready
    await h.stream(np.concatenate([tone(300), silence(1000)]))
    return h


async def test_short_phrase_ending_before_its_transcript_still_interrupts() -> None:
    h = await _short_phrase_over_agent("wait")
    t = h.transport
    assert t.last("reply.done")["status"] == "interrupted"
    types = t.types(audio=True)
    paused_from = types.index("input.speech.started")
    # no agent audio went out between the pause (at 200 ms of speech) and the barge-in
    audio_after = [e for e in t.events[paused_from:] if e["type"] == "reply.audio"]
    assert all(e["reply_id"] != t.last("reply.done")["reply_id"] for e in audio_after)
    await h.close()


async def test_short_backchannel_ending_before_its_transcript_resumes() -> None:
    h = await _short_phrase_over_agent("mhm")
    await h.wait(8)
    t = h.transport
    assert not t.of("input.speech.started")
    assert t.last("reply.done")["status"] == "completed"
    await h.close()


async def test_wordless_speech_interrupts_once_transcribed_long_enough() -> None:
    """Loud speech with no recognisable word (§11.4 condition 2b) interrupts, judged on a
    transcript that covers backchannel_window_ms of it (the recogniser is slow here)."""
    h = Harness()
    h.manager.providers = replace(build_fake_providers(), stt=SlowScriptedSTT("", h.clock, 0.4))
    await _speaking(h)
    await h.stream(tone(700))
    assert not h.transport.of("input.speech.started")  # 700 ms: not long enough
    await h.stream(tone(1200))
    assert h.transport.last("reply.done")["status"] == "interrupted"
    await h.close()

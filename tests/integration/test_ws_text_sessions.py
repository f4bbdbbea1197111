"""Text sessions (§6.8) through the real ``/v1/ws`` route: text input, text output, mixed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import numpy as np

from tests.harness import pcm16_b64, silence, tone
from tests.integration.conftest import Event, MakeServer, WsClient
from vocalis.providers.base import STT, Audio, STTOptions, Transcript, VADStream
from vocalis.providers.fake import build_fake_providers
from vocalis.providers.fake.speech import FakeSTT, FakeTTS, FakeVAD

TEXT = {"type": "text"}
FAST_TURNS = {"turn_detection": {"type": "server_vad", "min_silence": 300}}


@dataclass
class Calls:
    """What the session asked of the audio models."""

    vad: int = 0
    stt: int = 0
    tts: list[str] = field(default_factory=list)


class CountingVAD(FakeVAD):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def open_stream(self) -> VADStream:
        stream = super().open_stream()
        calls = self.calls

        class Counted:
            async def probabilities(self, audio: Audio) -> list[float]:
                calls.vad += 1
                return await stream.probabilities(audio)

        return Counted()


class CountingSTT(FakeSTT):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        self.calls.stt += 1
        return await super().transcribe(audio, options, final=final)


class CountingTTS(FakeTTS):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        self.calls.tts.append(text)
        async for audio in super().synthesize(text, voice):
            yield audio


def counted(make: MakeServer) -> tuple[Calls, MakeServer]:
    calls = Calls()
    stt: STT = CountingSTT(calls)
    providers = replace(
        build_fake_providers(), vad=CountingVAD(calls), stt=stt, tts=CountingTTS(calls)
    )
    return calls, lambda **settings: make(providers=providers, **settings)


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def speak(ws: WsClient, audio: np.ndarray) -> None:
    step = 24_000 * 40 // 1000
    for i in range(0, len(audio), step):
        ws.send({"type": "input.audio", "audio": pcm16_b64(audio[i : i + step])})


def ask(ws: WsClient, text: str) -> list[Event]:
    ws.send({"type": "conversation.message", "role": "user", "content": text})
    ws.send({"type": "reply.create"})
    return ws.until("reply.done", timeout=15)


def test_text_output_writes_deltas_and_never_synthesises(make_ws_server: MakeServer) -> None:
    calls, make = counted(make_ws_server)
    with make().connect() as ws:
        ready = ws.start({"output": TEXT})
        assert ready["config"]["output"] == TEXT
        events = ask(ws, "hello there")
    assert types(events)[0] == "reply.started"
    assert types(events)[-2:] == ["transcript.agent", "reply.done"]
    assert "reply.audio" not in types(events)
    deltas = [e for e in events if e["type"] == "transcript.agent.delta"]
    assert all(d["start_ms"] is None and d["end_ms"] is None for d in deltas)
    final = events[-2]["text"]
    assert final == "You said: hello there" == "".join(d["delta"] for d in deltas)
    assert events[-1]["status"] == "completed"
    assert calls.tts == []


def test_text_output_greeting_is_one_delta(make_ws_server: MakeServer) -> None:
    calls, make = counted(make_ws_server)
    with make().connect() as ws:
        ws.start({"output": TEXT, "greeting": "Hi! How can I help?"})
        events = ws.until("reply.done")
    deltas = [e["delta"] for e in events if e["type"] == "transcript.agent.delta"]
    assert deltas == ["Hi! How can I help?"]
    assert "reply.audio" not in types(events) and calls.tts == []


def test_text_input_ignores_audio_and_answers_messages(make_ws_server: MakeServer) -> None:
    calls, make = counted(make_ws_server)
    with make().connect() as ws:
        ready = ws.start({"input": TEXT})
        assert ready["config"]["input"] == TEXT
        speak(ws, np.concatenate([tone(1200), silence(1500)]))  # dropped silently
        events = ask(ws, "what time is it")
        ws.send({"type": "session.end"})
        ended = ws.expect("session.ended")
    assert not [t for t in types(events) if t.startswith(("input.", "transcript.user"))]
    assert events[-2]["text"] == "You said: what time is it"
    assert "reply.audio" in types(events)  # audio output: the reply is spoken
    assert calls.vad == 0 and calls.stt == 0
    assert ended["audio_duration_seconds"] is None


def test_text_in_text_out(make_ws_server: MakeServer) -> None:
    calls, make = counted(make_ws_server)
    with make().connect() as ws:
        ws.start({"input": TEXT, "output": TEXT})
        events = ask(ws, "ping")
        follow = ask(ws, "again")  # the history holds the first exchange
    assert events[-2]["text"] == "You said: ping" and follow[-2]["text"] == "You said: again"
    assert calls == Calls()


def test_spoken_turn_gets_a_written_reply(make_ws_server: MakeServer) -> None:
    calls, make = counted(make_ws_server)
    with make().connect() as ws:
        ws.start({"input": FAST_TURNS, "output": TEXT})
        speak(ws, np.concatenate([tone(900), silence(800)]))
        events = ws.until("reply.done", timeout=15)
    user = next(e for e in events if e["type"] == "transcript.user")
    assert events[-2]["text"] == f"You said: {user['text']}"
    assert "reply.audio" not in types(events) and calls.tts == []


def test_voice_interrupts_a_text_reply_being_written(make_ws_server: MakeServer) -> None:
    _, make = counted(make_ws_server)
    with make().connect() as ws:
        ws.start({"input": FAST_TURNS, "output": TEXT})
        ws.send(
            {"type": "conversation.message", "role": "user", "content": "slowly " + "word " * 40}
        )
        ws.send({"type": "reply.create"})
        written = ws.until("transcript.agent.delta")
        written += [ws.expect("transcript.agent.delta") for _ in range(3)]
        speak(ws, tone(600))
        events = ws.until("reply.done", timeout=15)
    sent = "".join(e["delta"] for e in written + events if e["type"] == "transcript.agent.delta")
    order = types(events)
    started = order.index("input.speech.started")
    assert order[started + 1 : started + 3] == ["transcript.agent", "reply.done"]
    assert events[-1]["status"] == "interrupted"
    interrupted = events[started + 1]
    assert interrupted["interrupted"] is True
    assert interrupted["text"] == sent.rstrip()
    assert 4 <= len(interrupted["text"].split()) < 40


def test_a_text_side_takes_no_other_fields(make_ws_server: MakeServer) -> None:
    with make_ws_server().connect() as ws:
        ws.send(
            {
                "type": "session.update",
                "session": {"input": {"type": "text", "format": {"encoding": "audio/pcm"}}},
            }
        )
        ws.expect_error(
            "invalid_value",
            "'input.format' must be absent when input.type is text",
            param="input.format",
        )
        assert ws.expect_close() == 1008


def test_the_sides_are_fixed_by_the_first_update(make_ws_server: MakeServer) -> None:
    with make_ws_server().connect() as ws:
        ready = ws.start({"output": TEXT})
        ws.send({"type": "session.update", "session": {"output": {"type": "audio"}}})
        ws.expect_error(
            "immutable_field",
            "'output.type' cannot be changed after the first session.update",
            param="output.type",
            session_id=ready["session_id"],
        )
        ws.assert_alive()

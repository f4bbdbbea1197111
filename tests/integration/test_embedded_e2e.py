"""The embedded stack end to end over a real socket: speech in, transcript, spoken reply, tools."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from tests.speech import reference, wer
from vocalis.audio import read_wav
from vocalis.providers.base import STTOptions
from vocalis.server.app import AppState
from vocalis.server.background import background_server

pytestmark = pytest.mark.models

DATA = Path(__file__).parent.parent / "data"
RATE = 24_000
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, AppState]]:
    with background_server(providers="embedded") as running:
        yield running


async def converse(url: str, clip: str, session: dict[str, Any]) -> list[dict[str, Any]]:
    """Stream a clip in real time, then silence, until the reply (and any follow-up) is done."""
    audio, _ = read_wav(DATA / clip, RATE)
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), audio])
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=16 << 20) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": session}))

        async def receive() -> None:
            async for raw in ws:
                event = json.loads(raw)
                events.append(event)
                if event["type"] == "reply.done" or event["type"] == "tool.call":
                    return

        receiver = asyncio.create_task(receive())
        step = RATE // 10
        silence = np.zeros(step, np.float32)
        for i in range(0, len(audio) + 40 * RATE, step):
            chunk = audio[i : i + step] if i < len(audio) else silence
            pcm = (np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes()
            await ws.send(
                json.dumps({"type": "input.audio", "audio": base64.b64encode(pcm).decode()})
            )
            if receiver.done():
                break
            await asyncio.sleep(0.1)
        receiver.cancel()
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events if e["type"] != "reply.audio"]


def test_spoken_turn_is_transcribed_and_answered_aloud(server: tuple[str, AppState]) -> None:
    url, state = server
    clip = "asr_16_cmu_arctic_aew_a0001.wav"
    events = asyncio.run(converse(url, clip, {"system_prompt": "Answer in one short sentence."}))
    seq = types(events)
    assert seq[:2] == ["session.updated", "session.ready"]
    user = [t for t in seq if t.startswith(("input.", "transcript.user"))]
    assert user[0] == "input.speech.started" and "transcript.user.delta" in user
    assert user[-2:] == ["input.speech.stopped", "transcript.user"]
    heard = next(e["text"] for e in events if e["type"] == "transcript.user")
    assert wer(reference(clip), heard) <= 0.35, heard
    assert seq[-2:] == ["transcript.agent", "reply.done"]
    said = next(e["text"] for e in events if e["type"] == "transcript.agent")
    assert said
    pcm = b"".join(base64.b64decode(e["data"]) for e in events if e["type"] == "reply.audio")
    reply_audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert state.providers is not None
    from vocalis.audio import resample

    transcript = asyncio.run(
        state.providers.stt.transcribe(
            resample(reply_audio, RATE, 16_000), STTOptions(), final=True
        )
    )
    assert wer(said, transcript.text) <= 0.4, (said, transcript.text)


def test_spoken_request_calls_the_registered_tool(server: tuple[str, AppState]) -> None:
    url, _ = server
    session = {
        "system_prompt": "You are a weather assistant. Use get_weather for weather questions.",
        "tools": [WEATHER],
    }
    events = asyncio.run(converse(url, "tts_weather_paris.wav", session))
    calls = [e for e in events if e["type"] == "tool.call"]
    assert calls, types(events)
    assert calls[0]["name"] == "get_weather"
    assert "paris" in str(calls[0]["arguments"].get("city", "")).lower()
    assert calls[0]["arguments"] == calls[0]["args"]


GREETING = (
    "Thanks for calling the shop. We are open from nine to five on weekdays, and from ten "
    "to four on Saturdays, and you can always write to us."
)


async def talk_over_greeting(url: str, clip: str) -> list[dict[str, Any]]:
    """Start a session with a long greeting and play ``clip`` 1.2 s into it."""
    speech, _ = read_wav(DATA / clip, RATE)
    events: list[dict[str, Any]] = []
    step = RATE // 10
    async with websockets.connect(url, max_size=16 << 20) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"greeting": GREETING}}))

        async def receive() -> None:
            async for raw in ws:
                event = json.loads(raw)
                events.append(event)
                if event["type"] == "reply.done":
                    return

        receiver = asyncio.create_task(receive())
        sent = 0
        first_audio_at: int | None = None
        while not receiver.done() and sent < 40 * RATE:
            if first_audio_at is None and any(e["type"] == "reply.audio" for e in events):
                first_audio_at = sent
            offset = None if first_audio_at is None else sent - first_audio_at - int(1.2 * RATE)
            chunk = np.zeros(step, np.float32)
            if offset is not None and 0 <= offset < len(speech):
                chunk = speech[offset : offset + step]
                chunk = np.pad(chunk, (0, step - len(chunk)))
            pcm = (np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes()
            message = {"type": "input.audio", "audio": base64.b64encode(pcm).decode()}
            await ws.send(json.dumps(message))
            sent += step
            await asyncio.sleep(0.1)
        receiver.cancel()
    return events


def test_speech_over_the_agent_interrupts_it(server: tuple[str, AppState]) -> None:
    url, _ = server
    events = asyncio.run(talk_over_greeting(url, "tts_wait_actually.wav"))
    seq = types(events)
    i = seq.index("input.speech.started")
    assert seq[i : i + 3] == ["input.speech.started", "transcript.agent", "reply.done"]
    agent = next(e for e in events if e["type"] == "transcript.agent")
    done = next(e for e in events if e["type"] == "reply.done")
    assert agent["interrupted"] is True and done["status"] == "interrupted"
    assert agent["text"] and GREETING.startswith(agent["text"]) and agent["text"] != GREETING


def test_a_backchannel_does_not_interrupt(server: tuple[str, AppState]) -> None:
    url, _ = server
    events = asyncio.run(talk_over_greeting(url, "tts_okay.wav"))
    done = next(e for e in events if e["type"] == "reply.done")
    agent = next(e for e in events if e["type"] == "transcript.agent")
    heard = [e.get("text") for e in events if e["type"].startswith("transcript.user")]
    assert done["status"] == "completed", heard
    assert agent["text"] == GREETING
    assert "input.speech.started" not in types(events)

"""Drive the engine without sockets: a recording transport, virtual time and synthetic audio."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vocalis.protocol.client_events import parse_client_message
from vocalis.providers.base import Audio, ProviderSet
from vocalis.providers.fake import build_fake_providers
from vocalis.providers.fake.speech import FakeTTS
from vocalis.session.clock import FakeClock
from vocalis.session.connection import Connection
from vocalis.session.hooks import Credential, SessionDeps
from vocalis.session.manager import SessionManager
from vocalis.settings import Settings

RATE = 24_000
CHUNK_MS = 40


@dataclass
class RecordingTransport:
    events: list[dict[str, Any]] = field(default_factory=list)
    closed_with: int | None = None

    def send(self, event: dict[str, Any]) -> None:
        assert self.closed_with is None, f"event after close: {event['type']}"
        self.events.append(json.loads(json.dumps(event)))

    def close(self, code: int) -> None:
        if self.closed_with is None:
            self.closed_with = code

    def types(self, *, audio: bool = False) -> list[str]:
        return [e["type"] for e in self.events if audio or e["type"] != "reply.audio"]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    def last(self, type_: str) -> dict[str, Any]:
        found = self.of(type_)
        assert found, f"no {type_} in {self.types()}"
        return found[-1]


class HeardTTS(FakeTTS):
    """The fake voice, remembering what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        self.said.append(text)
        async for audio in super().synthesize(text, voice):
            yield audio


def tone(ms: int, amplitude: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(rate * ms // 1000, dtype=np.float32) / rate
    return (amplitude * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.float32)


def pcm16_b64(audio: np.ndarray) -> str:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return base64.b64encode(pcm).decode()


class Harness:
    """One connection to a session manager, on virtual time."""

    def __init__(
        self,
        settings: Settings | None = None,
        providers: ProviderSet | None = None,
        credential: Credential | None = None,
        manager: SessionManager | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.settings = settings or Settings(providers="fake", legacy_ready_timeout_seconds=0)
        self.manager = manager or SessionManager(
            SessionDeps(self.settings, providers or build_fake_providers(), self.clock)
        )
        self.transport = RecordingTransport()
        self.conn = Connection(
            self.manager, self.transport, credential or Credential("open"), self.clock
        )

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.conn.on_text(text)
        await self.clock.settle()

    async def start(self, session: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "session.update", "session": session or {}})
        return self.transport.last("session.ready")

    async def stream(self, audio: np.ndarray, chunk_ms: int = CHUNK_MS) -> None:
        """Send audio in real-time-paced chunks, advancing virtual time as it plays."""
        step = RATE * chunk_ms // 1000
        for i in range(0, len(audio), step):
            chunk = audio[i : i + step]
            await self.send({"type": "input.audio", "audio": pcm16_b64(chunk)})
            await self.clock.advance(len(chunk) / RATE)

    async def speak(self, ms: int, then_silence_ms: int = 0) -> None:
        await self.stream(np.concatenate([tone(ms), silence(then_silence_ms)]))

    async def wait(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def until(
        self, type_: str, count: int = 1, limit_s: float = 30.0, step: float = 0.02
    ) -> dict[str, Any]:
        """Advance time (streaming silence) until ``count`` events of ``type_`` were sent."""
        waited = 0.0
        while waited < limit_s:
            if len(self.transport.of(type_)) >= count:
                return self.transport.of(type_)[count - 1]
            await self.stream(silence(int(step * 1000)), chunk_ms=int(step * 1000))
            waited += step
        raise AssertionError(f"no {type_} within {limit_s}s; got {self.transport.types()}")

    def session(self) -> Any:
        assert self.conn.session is not None
        return self.conn.session

    async def close(self) -> None:
        for session in self.manager.live_sessions():
            session.end("server_shutdown")
        await self.clock.settle()


def parse(text: str) -> Any:
    return parse_client_message(text)

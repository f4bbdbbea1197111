"""Speech on an OpenAI-compatible server (``POST …/audio/speech``, ``response_format: "pcm"``).

``pcm`` is raw 16-bit little-endian mono at 24 kHz from OpenAI, speaches and Kokoro-FastAPI;
the body is decoded to float32 as it streams in, so playback starts with the first bytes.
Catalog voice ids map onto the server's voice names through ``voice_map``; unmapped ids get
``default_voice``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import numpy as np

from vocalis.providers.base import Audio
from vocalis.providers.external._http import (
    REQUEST_ERRORS,
    ClientSource,
    auth_headers,
    endpoint,
    http_error,
    timeout,
    transport_error,
)

WHAT = "TTS request"
DEFAULT_SAMPLE_RATE = 24_000


class PCMDecoder:
    """16-bit little-endian PCM bytes to float32 samples, across chunk boundaries."""

    def __init__(self) -> None:
        self._odd = b""

    def feed(self, data: bytes) -> Audio:
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32)
        samples /= 32768.0
        return samples


class OpenAISpeechTTS:
    """One request per sentence, its audio yielded chunk by chunk as it arrives."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        default_voice: str,
        voice_map: Mapping[str, str] | None = None,
        api_key: str | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = endpoint(base_url, "audio/speech")
        self.model = model
        self.default_voice = default_voice
        self.voice_map = dict(voice_map or {})
        self.sample_rate = sample_rate
        self._api_key = api_key
        self._timeout = timeout(timeout_seconds)
        self._clients = ClientSource(client)

    def __repr__(self) -> str:
        return f"OpenAISpeechTTS(url={self.url!r}, model={self.model!r})"

    def server_voice(self, catalog_voice: str) -> str:
        return self.voice_map.get(catalog_voice, self.default_voice)

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[Audio]:
        if not text.strip():
            return
        body = {
            "model": self.model,
            "voice": self.server_voice(voice),
            "input": text,
            "response_format": "pcm",
        }
        decoder = PCMDecoder()
        try:
            async with self._clients.get().stream(
                "POST",
                self.url,
                json=body,
                headers=auth_headers(self._api_key),
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 400:
                    raise await http_error(response, WHAT, code="tts_error", api_key=self._api_key)
                async for data in response.aiter_bytes():
                    samples = decoder.feed(data)
                    if len(samples):
                        yield samples
        except REQUEST_ERRORS as exc:
            raise transport_error(exc, WHAT, code="tts_error") from None

    async def aclose(self) -> None:
        await self._clients.aclose()

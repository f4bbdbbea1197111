"""Transcription on an OpenAI-compatible server (``POST …/audio/transcriptions``).

Each call uploads the turn's audio so far as a 16 kHz mono 16-bit WAV built in memory. Remote
partials cost a request each, so they are off unless ``partials=True``: without them a partial
is the final text already produced for the same turn (after an end-of-turn check the user went
on speaking), or ``""``.

A failed request never raises (an exception here would end the whole session): it is logged
and the transcript is empty, so the turn is dropped as if nothing intelligible was said.
"""

from __future__ import annotations

import json
import logging
from collections import deque

import httpx
import numpy as np

from vocalis.audio import wav_bytes
from vocalis.providers.base import INPUT_RATE, Audio, STTOptions, Transcript
from vocalis.providers.external._http import (
    REQUEST_ERRORS,
    ClientSource,
    auth_headers,
    endpoint,
    http_error,
    timeout,
    transport_error,
)

logger = logging.getLogger(__name__)

WHAT = "STT request"
MIN_SAMPLES = INPUT_RATE // 10  # below 100 ms there is nothing to transcribe
RECENT_FINALS = 8  # finals remembered for partials (one per concurrent session is plenty)


def prompt_text(options: STTOptions) -> str | None:
    """The recogniser prompt: the transcription prompt, then the key terms."""
    parts = [options.prompt.strip()] if options.prompt and options.prompt.strip() else []
    if options.keyterms:
        parts.append(", ".join(options.keyterms))
    return " ".join(parts) or None


class OpenAITranscriptionSTT:
    """Final (and optionally partial) transcripts from a remote Whisper-style endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        partials: bool = False,
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = endpoint(base_url, "audio/transcriptions")
        self.model = model
        self.partials = partials
        self._api_key = api_key
        self._timeout = timeout(timeout_seconds)
        self._clients = ClientSource(client)
        self._finals: deque[tuple[Audio, str]] = deque(maxlen=RECENT_FINALS)

    def __repr__(self) -> str:
        return f"OpenAITranscriptionSTT(url={self.url!r}, model={self.model!r})"

    async def transcribe(self, audio: Audio, options: STTOptions, *, final: bool) -> Transcript:
        if not final and not self.partials:
            return Transcript(self._final_of_same_turn(audio), None)
        if len(audio) < MIN_SAMPLES:
            return Transcript("", None)
        text = await self._request(audio, options)
        if final:
            self._finals.append((audio.copy(), text))
        return Transcript(text, None)

    def _final_of_same_turn(self, audio: Audio) -> str:
        """The text of a recent final whose audio ``audio`` starts with. The whole audio must
        match, so a session can only ever get the text of audio it sent itself."""
        for final_audio, text in reversed(self._finals):
            size = len(final_audio)
            if len(audio) >= size and np.array_equal(audio[:size], final_audio):
                return text
        return ""

    def form_fields(self, options: STTOptions) -> dict[str, str]:
        fields = {"model": self.model, "response_format": "json"}
        if len(options.language_codes) == 1:
            fields["language"] = options.language_codes[0]
        prompt = prompt_text(options)
        if prompt:
            fields["prompt"] = prompt
        return fields

    async def _request(self, audio: Audio, options: STTOptions) -> str:
        files = {"file": ("audio.wav", wav_bytes(audio, INPUT_RATE), "audio/wav")}
        try:
            async with self._clients.get().stream(
                "POST",
                self.url,
                data=self.form_fields(options),
                files=files,
                headers=auth_headers(self._api_key),
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 400:
                    error = await http_error(
                        response, WHAT, code="internal_error", api_key=self._api_key
                    )
                    logger.warning("%s; the transcript is empty", error.message)
                    return ""
                body = await response.aread()
        except REQUEST_ERRORS as exc:
            error = transport_error(exc, WHAT, code="internal_error")
            logger.warning("%s; the transcript is empty", error.message)
            return ""
        return _text_of(body)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _text_of(body: bytes) -> str:
    raw = body.decode("utf-8", "replace")
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError:
        return raw.strip()  # a server that answered text/plain
    if isinstance(decoded, dict) and isinstance(decoded.get("text"), str):
        return str(decoded["text"]).strip()
    return ""

"""External providers: LLM, STT and TTS on OpenAI-compatible HTTP servers.

Any stage can be moved off the embedded models (or off the fakes of ``--providers fake``) by
giving its server's base URL; the other stages stay as they are. VAD and the turn model always
run in-process (they are cheap). Base URLs include the API prefix (usually ``/v1``); the
provider appends ``/chat/completions``, ``/audio/transcriptions`` or ``/audio/speech``.

Settings (environment variables, or the same names in the TOML file):

LLM (``POST {base}/chat/completions``, streamed, with tools):
  ``VOCALIS_LLM_BASE_URL``   the server, e.g. ``http://127.0.0.1:8000/v1``
  ``VOCALIS_LLM_MODEL``      model name on that server (required with a base URL)
  ``VOCALIS_LLM_API_KEY``    sent as ``Authorization: Bearer …`` when set; never logged

STT (``POST {base}/audio/transcriptions``, multipart, 16 kHz WAV):
  ``VOCALIS_STT_BASE_URL``   the server
  ``VOCALIS_STT_MODEL``      default ``whisper-1``
  ``VOCALIS_STT_API_KEY``    optional bearer key
  ``VOCALIS_STT_PARTIALS``   ``true`` = also request partial transcripts while the user speaks
                             (one request per partial); default ``false``: finals only, so
                             barge-in waits ``backchannel_window_ms`` instead of reading words

TTS (``POST {base}/audio/speech``, ``response_format: "pcm"``):
  ``VOCALIS_TTS_BASE_URL``   the server
  ``VOCALIS_TTS_MODEL``      default ``tts-1``
  ``VOCALIS_TTS_API_KEY``    optional bearer key
  ``VOCALIS_TTS_VOICE``      server voice for catalog voices not in the map; default ``alloy``
  ``VOCALIS_TTS_VOICE_MAP``  JSON object, catalog voice id -> server voice,
                             e.g. ``{"ivy": "af_heart", "james": "am_michael"}``
  ``VOCALIS_TTS_SAMPLE_RATE`` rate of the raw PCM the server returns; default 24000

Shared: ``VOCALIS_EXTERNAL_TIMEOUT_SECONDS`` (default 30) bounds connecting and each wait for
data, not a whole streamed reply. A stored agent's custom LLM (contract §17.3.2) uses the same
LLM provider with the agent's own URL, model and key, and a 30 s timeout.

Failures: LLM and TTS errors become ``reply.error`` (``llm_error`` / ``tts_error``) with
``retryable``, ``status_code`` and the provider's error ``code``/``param``; the message is
generic (``LLM request failed: HTTP 503``) so no URL, key or provider text reaches clients. A
failed transcription is logged and yields an empty transcript (the turn is dropped).

Example servers:
  * vLLM: ``vllm serve Qwen/Qwen2.5-7B-Instruct --enable-auto-tool-choice
    --tool-call-parser hermes`` -> ``LLM_BASE_URL=http://host:8000/v1``,
    ``LLM_MODEL=Qwen/Qwen2.5-7B-Instruct``. vLLM also serves Whisper for STT
    (``vllm serve openai/whisper-large-v3-turbo`` -> ``STT_MODEL=openai/whisper-large-v3-turbo``).
  * llama.cpp: ``llama-server -m model.gguf --jinja --port 8080`` (``--jinja`` enables tool
    calls) -> ``LLM_BASE_URL=http://host:8080/v1``; the model name is not checked.
  * Ollama: ``LLM_BASE_URL=http://host:11434/v1``, ``LLM_MODEL=qwen2.5:7b``.
  * speaches (faster-whisper and Kokoro): ``STT_BASE_URL=http://host:8000/v1``,
    ``STT_MODEL=Systran/faster-whisper-small``; ``TTS_BASE_URL=http://host:8000/v1``,
    ``TTS_MODEL=speaches-ai/Kokoro-82M-v1.0-ONNX``, ``TTS_VOICE=af_heart``.
  * Kokoro-FastAPI: ``TTS_BASE_URL=http://host:8880/v1``, ``TTS_MODEL=kokoro``,
    ``TTS_VOICE=af_heart``.
  * OpenAI: base URL ``https://api.openai.com/v1`` for all three, with the API key.
(Every name above is prefixed with ``VOCALIS_``.)
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from vocalis.providers.base import ProviderSet
from vocalis.providers.external.llm import OpenAIChatLLM, custom_llm_factory
from vocalis.providers.external.stt import OpenAITranscriptionSTT
from vocalis.providers.external.tts import OpenAISpeechTTS
from vocalis.settings import Settings

__all__ = [
    "OpenAIChatLLM",
    "OpenAISpeechTTS",
    "OpenAITranscriptionSTT",
    "apply_external_overrides",
    "custom_llm_factory",
]


def _shown(base_url: str, model: str) -> str:
    """``base_url`` without any user:password part, for logs and /healthz."""
    try:
        url = httpx.URL(base_url).copy_with(username=None, password=None, query=None)
    except (httpx.InvalidURL, TypeError):
        return f"external ({model})"
    return f"external {url} ({model})"


def apply_external_overrides(settings: Settings, providers: ProviderSet) -> ProviderSet:
    """``providers`` with each stage whose ``*_base_url`` is set replaced by its external
    provider. Raises ``ValueError`` when ``llm_base_url`` is set without ``llm_model``."""
    timeout = settings.external_timeout_seconds
    llm, stt, tts = providers.llm, providers.stt, providers.tts
    details = dict(providers.details)
    replaced: list[str] = []
    if settings.llm_base_url:
        if not settings.llm_model:
            raise ValueError("VOCALIS_LLM_MODEL must be set along with VOCALIS_LLM_BASE_URL")
        llm = OpenAIChatLLM(
            settings.llm_base_url,
            settings.llm_model,
            api_key=settings.llm_api_key,
            timeout_seconds=timeout,
        )
        details["llm"] = _shown(settings.llm_base_url, settings.llm_model)
        replaced.append("llm")
    if settings.stt_base_url:
        stt = OpenAITranscriptionSTT(
            settings.stt_base_url,
            settings.stt_model,
            api_key=settings.stt_api_key,
            partials=settings.stt_partials,
            timeout_seconds=timeout,
        )
        details["stt"] = _shown(settings.stt_base_url, settings.stt_model)
        replaced.append("stt")
    if settings.tts_base_url:
        tts = OpenAISpeechTTS(
            settings.tts_base_url,
            settings.tts_model,
            default_voice=settings.tts_voice,
            voice_map=settings.tts_voice_map,
            api_key=settings.tts_api_key,
            sample_rate=settings.tts_sample_rate,
            timeout_seconds=timeout,
        )
        details["tts"] = _shown(settings.tts_base_url, settings.tts_model)
        replaced.append("tts")
    if not replaced:
        return providers
    name = f"{providers.name}+external-{'+'.join(replaced)}"
    return replace(providers, name=name, llm=llm, stt=stt, tts=tts, details=details)

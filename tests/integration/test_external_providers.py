"""External providers against a real OpenAI-compatible stub server on a local socket."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.integration.openai_stub import SECRET_IN_ERROR, StubServer, speech_samples
from vocalis.protocol.config import CustomLLM
from vocalis.providers.base import (
    ChatMessage,
    LLMError,
    LLMEvent,
    LLMRequest,
    STTOptions,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
)
from vocalis.providers.external import apply_external_overrides
from vocalis.providers.external.llm import OpenAIChatLLM, custom_llm_factory
from vocalis.providers.external.stt import OpenAITranscriptionSTT
from vocalis.providers.external.tts import OpenAISpeechTTS, PCMDecoder
from vocalis.providers.fake import build_fake_providers
from vocalis.settings import Settings

KEY = "sk-test-0123456789"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
HELLO = LLMRequest(messages=(ChatMessage("user", "Hi"),))
MakeLLM = Callable[..., OpenAIChatLLM]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def make_llm(stub: StubServer) -> AsyncIterator[MakeLLM]:
    made: list[OpenAIChatLLM] = []

    def make(model: str, **kwargs: Any) -> OpenAIChatLLM:
        llm = OpenAIChatLLM(stub.base_url, model, **kwargs)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


async def collect(llm: OpenAIChatLLM, request: LLMRequest = HELLO) -> list[LLMEvent]:
    return [event async for event in llm.stream(request)]


async def failure(llm: OpenAIChatLLM, request: LLMRequest = HELLO) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await collect(llm, request)
    return caught.value


# ------------------------------------------------------------------------------------------ LLM
async def test_text_streams_as_deltas(make_llm: MakeLLM, stub: StubServer) -> None:
    events = await collect(make_llm("text"))
    assert all(isinstance(e, TextDelta) for e in events)
    assert len(events) == 5
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == (
        "Hello there, how can I help?"
    )
    body = stub.state.last("/v1/chat/completions").body
    assert body["stream"] is True and body["model"] == "text"
    assert "tools" not in body and "reasoning_effort" not in body


async def test_streamed_tool_call_is_assembled_and_unknown_tools_dropped(
    make_llm: MakeLLM,
) -> None:
    request = LLMRequest(messages=(ChatMessage("user", "Weather?"),), tools=(WEATHER,))
    events = await collect(make_llm("tools"), request)
    # call 1 is to a tool not offered, call 2 has truncated arguments: both dropped
    assert events == [ToolCallRequest("get_weather", {"city": "Paris"}, "call_0")]


async def test_tool_call_written_as_text_is_parsed_not_spoken(make_llm: MakeLLM) -> None:
    request = LLMRequest(messages=(ChatMessage("user", "Weather?"),), tools=(WEATHER,))
    events = await collect(make_llm("text-call"), request)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "{" not in text and "get_weather" not in text
    assert text.strip() == "Let me check."
    calls = [e for e in events if isinstance(e, ToolCallRequest)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"})]


async def test_text_tool_call_to_unoffered_tool_is_dropped(make_llm: MakeLLM) -> None:
    other = ToolSpec("get_time", "Current time", {"type": "object", "properties": {}})
    request = LLMRequest(messages=(ChatMessage("user", "Weather?"),), tools=(other,))
    events = await collect(make_llm("text-call"), request)
    assert not any(isinstance(e, ToolCallRequest) for e in events)
    assert "get_weather" not in "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_request_body_converts_messages_and_tools(
    make_llm: MakeLLM, stub: StubServer
) -> None:
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage(
            "assistant",
            "",
            tool_calls=(ToolCallRequest("get_weather", {"city": "Paris"}, "call_abc"),),
        ),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="call_abc", name="get_weather"),
    )
    llm = make_llm("text", reasoning_effort="low")
    await collect(llm, LLMRequest(messages=messages, tools=(WEATHER,), max_tokens=99))
    body = stub.state.last("/v1/chat/completions").body
    assert body["max_tokens"] == 99
    assert body["reasoning_effort"] == "low"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    system, user, assistant, tool = body["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user == {"role": "user", "content": "Weather in Paris?"}
    (call,) = assistant["tool_calls"]
    assert call["id"] == "call_abc" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_abc"
    assert tool["content"] == '{"temp": 21}'


async def test_server_ignoring_stream_flag_still_answers(make_llm: MakeLLM) -> None:
    events = await collect(make_llm("nostream"))
    assert events == [TextDelta("Plain answer.")]


async def test_authorization_sent_and_never_logged(
    make_llm: MakeLLM, stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await collect(make_llm("text", api_key=KEY))
    assert stub.state.last("/v1/chat/completions").headers["authorization"] == f"Bearer {KEY}"
    error = await failure(make_llm("error-503", api_key=KEY))
    assert KEY not in str(error) and KEY not in repr(make_llm("x", api_key=KEY))
    assert caplog.records, "debug logging was captured"
    assert KEY not in caplog.text
    # the provider's message echoed the key: the log redacts it
    assert SECRET_IN_ERROR in caplog.text


async def test_no_authorization_without_key(make_llm: MakeLLM, stub: StubServer) -> None:
    await collect(make_llm("text"))
    assert "authorization" not in stub.state.last("/v1/chat/completions").headers


async def test_http_503_is_retryable_llm_error(make_llm: MakeLLM) -> None:
    error = await failure(make_llm("error-503"))
    assert error.message == "LLM request failed: HTTP 503"
    assert (error.code, error.retryable, error.status_code) == ("llm_error", True, 503)
    assert (error.provider_code, error.provider_param) == ("overloaded", None)
    assert "try later" not in error.message


async def test_http_429_carries_provider_code_and_param(make_llm: MakeLLM) -> None:
    error = await failure(make_llm("error-429"))
    assert error.message == "LLM request failed: HTTP 429"
    assert (error.retryable, error.status_code) == (True, 429)
    assert (error.provider_code, error.provider_param) == ("rate_limit_exceeded", "messages")


async def test_error_inside_stream_raises_after_text(make_llm: MakeLLM) -> None:
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError) as caught:
        async for event in make_llm("stream-error").stream(HELLO):
            seen.append(event)
    assert seen == [TextDelta("Hi")]
    assert caught.value.status_code == 500 and caught.value.retryable


async def test_timeout_is_retryable(make_llm: MakeLLM) -> None:
    error = await failure(make_llm("hang", timeout_seconds=0.2))
    assert error.message == "LLM request failed: timed out"
    assert error.retryable and error.status_code is None


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAIChatLLM(f"http://127.0.0.1:{port}/v1", "m", api_key=KEY)
    error = await failure(llm)
    await llm.aclose()
    assert error.message == "LLM request failed: could not connect"
    assert error.retryable and error.status_code is None and KEY not in error.message


async def test_invalid_base_url_is_not_retryable() -> None:
    error = await failure(OpenAIChatLLM("ftp://example.invalid/v1", "m"))
    assert error.message == "LLM request failed: invalid base URL" and not error.retryable


async def test_closing_the_stream_closes_the_http_request(
    make_llm: MakeLLM, stub: StubServer
) -> None:
    stub.state.slow_done.clear()
    stream = make_llm("slow").stream(HELLO)
    first = await anext(stream)
    assert first == TextDelta("word ")
    await stream.aclose()
    assert await asyncio.to_thread(stub.state.slow_done.wait, 5)
    assert stub.state.slow_sent is not None and stub.state.slow_sent < 200


async def test_cancelling_the_consumer_closes_the_http_request(
    make_llm: MakeLLM, stub: StubServer
) -> None:
    stub.state.slow_done.clear()
    llm = make_llm("slow")
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream(HELLO):
            got_one.set()

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stub.state.slow_done.wait, 5)
    assert stub.state.slow_sent is not None and stub.state.slow_sent < 200


async def test_custom_llm_factory_uses_agent_settings(stub: StubServer) -> None:
    custom = CustomLLM(stub.base_url.rstrip("/"), "text", api_key=KEY, reasoning_effort="high")
    llm = custom_llm_factory(custom)
    events = [e async for e in llm.stream(HELLO)]
    assert events and all(isinstance(e, TextDelta) for e in events)
    recorded = stub.state.last("/v1/chat/completions")
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.body["reasoning_effort"] == "high" and recorded.body["model"] == "text"


async def test_sse_events_split_over_several_data_lines() -> None:
    chunk = {"choices": [{"delta": {"content": "multi-line"}}]}
    text = json.dumps(chunk, indent=1)  # a JSON value spread over several lines
    sse = "".join(f"data: {line}\n" for line in text.splitlines()) + "\ndata: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        llm = OpenAIChatLLM("http://stub/v1", "m", client=client)
        assert await collect(llm) == [TextDelta("multi-line")]


# ------------------------------------------------------------------------------------------ STT
async def test_stt_posts_wav_and_fields(stub: StubServer) -> None:
    stt = OpenAITranscriptionSTT(stub.base_url, "whisper-x", api_key=KEY)
    audio = (0.5 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    options = STTOptions(
        prompt="Orders talk.", keyterms=("ORD-48152", "Vocalis"), language_codes=("en",)
    )
    result = await stt.transcribe(audio, options, final=True)
    await stt.aclose()
    assert result.text == "hello world" and result.confidence is None
    recorded = stub.state.last("/v1/audio/transcriptions")
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.fields == {
        "model": "whisper-x",
        "response_format": "json",
        "language": "en",
        "prompt": "Orders talk. ORD-48152, Vocalis",
    }
    assert recorded.file_type == "audio/wav"
    with wave.open(io.BytesIO(recorded.file)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() == 8000
        pcm = np.frombuffer(wav.readframes(8000), dtype="<i2")
    np.testing.assert_allclose(pcm / 32767.0, audio, atol=1e-4)


async def test_stt_sends_no_language_for_several_codes(stub: StubServer) -> None:
    stt = OpenAITranscriptionSTT(stub.base_url, "whisper-x")
    audio = np.zeros(4000, dtype=np.float32)
    await stt.transcribe(audio, STTOptions(language_codes=("en", "fr")), final=True)
    await stt.aclose()
    recorded = stub.state.last("/v1/audio/transcriptions")
    assert "language" not in recorded.fields and "prompt" not in recorded.fields
    assert "authorization" not in recorded.headers


async def test_stt_partials_off_reuse_the_turns_final(stub: StubServer) -> None:
    stt = OpenAITranscriptionSTT(stub.base_url, "whisper-x", partials=False)
    turn = np.random.default_rng(1).uniform(-0.3, 0.3, 16000).astype(np.float32)
    before = len(stub.state.requests)
    assert (await stt.transcribe(turn[:8000], STTOptions(), final=False)).text == ""
    assert len(stub.state.requests) == before  # partials make no request
    assert (await stt.transcribe(turn[:8000], STTOptions(), final=True)).text == "hello world"
    assert (await stt.transcribe(turn, STTOptions(), final=False)).text == "hello world"
    other_turn = np.random.default_rng(2).uniform(-0.3, 0.3, 16000).astype(np.float32)
    assert (await stt.transcribe(other_turn, STTOptions(), final=False)).text == ""
    await stt.aclose()


async def test_stt_partials_on_make_requests(stub: StubServer) -> None:
    stt = OpenAITranscriptionSTT(stub.base_url, "whisper-x", partials=True)
    before = len(stub.state.requests)
    result = await stt.transcribe(np.zeros(4000, np.float32), STTOptions(), final=False)
    await stt.aclose()
    assert result.text == "hello world" and len(stub.state.requests) == before + 1


async def test_stt_failure_gives_empty_transcript(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    stt = OpenAITranscriptionSTT(stub.base_url, "error-503", api_key=KEY)
    caplog.set_level(logging.DEBUG)
    result = await stt.transcribe(np.zeros(4000, np.float32), STTOptions(), final=True)
    await stt.aclose()
    assert result.text == ""
    assert "STT request failed: HTTP 503" in caplog.text and KEY not in caplog.text


# ------------------------------------------------------------------------------------------ TTS
async def test_tts_decodes_streamed_pcm(stub: StubServer) -> None:
    tts = OpenAISpeechTTS(
        stub.base_url, "kokoro", default_voice="af_heart", voice_map={"james": "am_michael"}
    )
    text = "Hello there."
    chunks = [chunk async for chunk in tts.synthesize(text, "james")]
    await tts.aclose()
    assert tts.sample_rate == 24000
    assert len(chunks) > 1 and all(c.dtype == np.float32 for c in chunks)
    audio = np.concatenate(chunks)
    expected = speech_samples(len(text)).astype(np.float32) / 32768.0
    assert len(audio) == len(text) * 240  # 10 ms per character at 24 kHz
    np.testing.assert_array_equal(audio, expected)
    body = stub.state.last("/v1/audio/speech").body
    assert body == {
        "model": "kokoro",
        "voice": "am_michael",
        "input": text,
        "response_format": "pcm",
    }


async def test_tts_unmapped_voice_uses_default(stub: StubServer) -> None:
    tts = OpenAISpeechTTS(stub.base_url, "kokoro", default_voice="af_heart", api_key=KEY)
    _ = [chunk async for chunk in tts.synthesize("Hi.", "ivy")]
    await tts.aclose()
    recorded = stub.state.last("/v1/audio/speech")
    assert recorded.body["voice"] == "af_heart"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"


async def test_tts_error_is_tts_error(stub: StubServer) -> None:
    tts = OpenAISpeechTTS(stub.base_url, "error-503", default_voice="alloy")
    with pytest.raises(LLMError) as caught:
        _ = [chunk async for chunk in tts.synthesize("Hi.", "ivy")]
    await tts.aclose()
    error = caught.value
    assert (error.code, error.message) == ("tts_error", "TTS request failed: HTTP 503")
    assert error.retryable and error.status_code == 503


def test_pcm_decoder_joins_split_samples() -> None:
    decoder = PCMDecoder()
    data = np.array([1000, -2000, 32767], dtype="<i2").tobytes()
    parts = [decoder.feed(data[:3]), decoder.feed(data[3:5]), decoder.feed(data[5:])]
    assert [len(p) for p in parts] == [1, 1, 1]
    np.testing.assert_array_equal(
        np.concatenate(parts), np.array([1000, -2000, 32767], np.float32) / 32768.0
    )


# -------------------------------------------------------------------------------------- wiring
async def test_overrides_replace_only_configured_stages(stub: StubServer) -> None:
    fake = build_fake_providers()
    settings = Settings(llm_base_url=stub.base_url, llm_model="text", llm_api_key=KEY)
    providers = apply_external_overrides(settings, fake)
    assert isinstance(providers.llm, OpenAIChatLLM)
    assert providers.stt is fake.stt and providers.tts is fake.tts
    assert providers.name == "fake+external-llm"
    assert KEY not in json.dumps(providers.details)
    events = [e async for e in providers.llm.stream(HELLO)]
    assert events and isinstance(events[0], TextDelta)
    await providers.aclose()


def test_overrides_all_stages_and_missing_model() -> None:
    fake = build_fake_providers()
    assert apply_external_overrides(Settings(), fake) is fake
    settings = Settings(
        llm_base_url="http://user:pw@h/v1",
        llm_model="m",
        stt_base_url="http://h/v1",
        tts_base_url="http://h/v1",
        tts_voice_map={"ivy": "af_heart"},
        tts_sample_rate=22050,
    )
    providers = apply_external_overrides(settings, fake)
    assert isinstance(providers.stt, OpenAITranscriptionSTT)
    assert isinstance(providers.tts, OpenAISpeechTTS)
    assert providers.tts.sample_rate == 22050 and providers.tts.server_voice("ivy") == "af_heart"
    assert "pw" not in providers.details["llm"]
    with pytest.raises(ValueError, match="VOCALIS_LLM_MODEL"):
        apply_external_overrides(Settings(llm_base_url="http://h/v1"), fake)

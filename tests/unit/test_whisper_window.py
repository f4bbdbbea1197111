"""The Whisper encoder's input is cut to the audio plus a little padding (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faster_whisper")

from vocalis.providers.embedded.stt import ENCODER_TAIL_FRAMES, encoder_frames

WINDOW = 3000  # faster-whisper pads every segment to 30 s of 10 ms frames


def _features(content: int, *, batch: bool = False) -> np.ndarray:
    """Log-mel features as faster-whisper hands them over: ``content`` real frames (never all
    zero, silence included), then zero padding up to the window."""
    features = np.zeros((80, WINDOW), np.float32)
    features[:, :content] = -0.6  # a normalised log-mel floor: quiet, but not padding
    return features[None] if batch else features


@pytest.mark.parametrize("content", [1, 57, 400, 1234])
def test_the_padding_is_cut_to_the_tail(content: int) -> None:
    keep = encoder_frames(_features(content))
    assert content + ENCODER_TAIL_FRAMES <= keep <= content + ENCODER_TAIL_FRAMES + 1
    assert keep % 2 == 0


def test_a_batched_segment_is_measured_the_same_way() -> None:
    assert encoder_frames(_features(400, batch=True)) == encoder_frames(_features(400))


def test_a_full_window_is_left_whole() -> None:
    assert encoder_frames(_features(WINDOW)) == WINDOW
    assert encoder_frames(_features(WINDOW - 50)) == WINDOW


def test_a_zero_inside_the_audio_does_not_end_it() -> None:
    features = _features(800)
    features[:, 300:310] = 0.0  # a column of exact zeros before the end is still audio
    assert encoder_frames(features) >= 800 + ENCODER_TAIL_FRAMES


def test_no_content_keeps_only_the_tail() -> None:
    assert encoder_frames(np.zeros((80, WINDOW), np.float32)) == ENCODER_TAIL_FRAMES


def test_a_batch_of_turns_is_cut_after_its_longest() -> None:
    batch = np.stack([_features(300), _features(900), _features(40)])
    assert encoder_frames(batch) == encoder_frames(_features(900))

"""Locating and verifying the embedded model files (no download, no model loading)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vocalis.settings import Settings

pytest.importorskip("faster_whisper")

from vocalis.providers.embedded import assets


def test_a_missing_turn_model_is_reported_without_downloading(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(assets.MissingModelError, match="models prepare"):
        assets.ensure_assets(settings)


def test_overrides_are_used_as_given(tmp_path: Path) -> None:
    turn = tmp_path / "turn.onnx"
    llm = tmp_path / "model.gguf"
    turn.write_bytes(b"t")
    llm.write_bytes(b"l")
    settings = Settings(
        data_dir=tmp_path / "data", embedded_turn_model_path=turn, embedded_llm_model_path=llm
    )
    found = assets.ensure_assets(settings)
    assert (found.turn_model, found.llm_model) == (turn, llm)
    for path in (found.vad_model, found.stt_model_dir / "model.bin", found.tts_model):
        assert path.is_file()
    assert found.tts_config.name == found.tts_model.name + ".json"
    assert not (tmp_path / "data").exists()  # nothing was assembled


def test_a_verified_file_is_not_hashed_again_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert assets._verify_or_stamp(path, digest)
    assert assets._stamp_ok(path, digest)
    path.write_bytes(b"abcd")  # size changed: the stamp no longer vouches for it
    assert not assets._stamp_ok(path, digest)
    assert not assets._verify_or_stamp(path, digest)

"""The served LLM file: the shipped GGUF re-encoded by the set-up (``requantize.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vocalis.settings import Settings

pytest.importorskip("xllamacpp")
pytest.importorskip("gguf")

import gguf

from vocalis.providers.embedded import assets
from vocalis.providers.embedded.requantize import target_type

Q = gguf.GGMLQuantizationType


def test_the_recipe_puts_the_feed_forward_in_q4_0_and_keeps_the_rest_fine() -> None:
    assert target_type("blk.3.ffn_gate.weight", Q.Q5_0, 2) is Q.Q4_0
    assert target_type("blk.3.ffn_up.weight", Q.Q5_0, 2) is Q.Q4_0
    assert target_type("blk.3.ffn_down.weight", Q.Q6_K, 2) is Q.Q8_0
    assert target_type("blk.3.attn_q.weight", Q.Q5_0, 2) is Q.Q8_0
    assert target_type("output.weight", Q.Q8_0, 2) is Q.Q8_0
    assert target_type("token_embd.weight", Q.Q5_0, 2) is Q.Q5_0  # read, never multiplied
    assert target_type("blk.3.attn_norm.weight", Q.F32, 1) is Q.F32


def test_the_default_file_is_the_re_encoded_one_with_every_tensor_of_the_shipped() -> None:
    settings = Settings()
    try:
        served = assets.ensure_assets(settings).llm_model
    except assets.MissingModelError as exc:
        pytest.skip(f"models not prepared: {exc}")
    assert served.name == assets.LLM_FAST_FILENAME
    assert assets.missing_assets(settings) == []
    shipped = gguf.GGUFReader(assets.models_dir(settings) / assets.LLM_FILENAME)
    derived = gguf.GGUFReader(served)
    want = {t.name: target_type(t.name, Q(t.tensor_type), len(t.shape)) for t in shipped.tensors}
    have = {t.name: Q(t.tensor_type) for t in derived.tensors}
    assert have == want
    assert [list(t.shape) for t in derived.tensors] == [list(t.shape) for t in shipped.tensors]
    # the chat template and the tokenizer came along (the model is served through them)
    for key in ("tokenizer.chat_template", "tokenizer.ggml.tokens", "qwen2.block_count"):
        assert derived.fields[key].contents() == shipped.fields[key].contents()


def test_turning_it_off_serves_the_shipped_file() -> None:
    settings = Settings(embedded_llm_requantize=False)
    try:
        served = assets.ensure_assets(settings).llm_model
    except assets.MissingModelError as exc:
        pytest.skip(f"models not prepared: {exc}")
    assert served.name == assets.LLM_FILENAME


def test_a_small_file_keeps_its_metadata_and_its_values(tmp_path: Path) -> None:
    """Written by the gguf package itself, re-encoded, read back: the numbers survive."""
    from vocalis.providers.embedded.requantize import requantize

    rng = np.random.default_rng(7)
    up = rng.normal(0, 0.05, (64, 256)).astype(np.float32)
    attn = rng.normal(0, 0.05, (32, 256)).astype(np.float32)
    norm = rng.normal(1, 0.1, 256).astype(np.float32)
    source = tmp_path / "small.gguf"
    writer = gguf.GGUFWriter(source, arch="qwen2")
    writer.add_block_count(1)
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    for name, values in (("blk.0.ffn_up.weight", up), ("blk.0.attn_q.weight", attn)):
        packed = gguf.quants.quantize(values, Q.Q5_0)
        writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=Q.Q5_0)
    writer.add_tensor("blk.0.attn_norm.weight", norm)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    target = tmp_path / "models" / "fast.gguf"
    requantize(source, target, progress=lambda _: None)

    derived = {t.name: t for t in gguf.GGUFReader(target).tensors}
    assert Q(derived["blk.0.ffn_up.weight"].tensor_type) is Q.Q4_0
    assert Q(derived["blk.0.attn_q.weight"].tensor_type) is Q.Q8_0
    assert Q(derived["blk.0.attn_norm.weight"].tensor_type) is Q.F32
    got_up = gguf.quants.dequantize(derived["blk.0.ffn_up.weight"].data, Q.Q4_0)
    got_attn = gguf.quants.dequantize(derived["blk.0.attn_q.weight"].data, Q.Q8_0)
    # 4 bits: within a step of a 16-level grid of each 32-value block's range; 8 bits: near-exact
    assert np.abs(got_up - up).max() < 0.03
    assert np.abs(got_attn - attn).max() < 0.01
    assert np.array_equal(np.asarray(derived["blk.0.attn_norm.weight"].data), norm)
    fields = gguf.GGUFReader(target).fields
    assert fields["tokenizer.chat_template"].contents() == "{{ messages }}"
    assert fields["qwen2.block_count"].contents() == 1
    assert not list(target.parent.glob(".llm-q-*"))  # no temporary file left behind

"""The quantization benchmark's reading measure, checked against llama.cpp on the real model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")
pytest.importorskip("gguf")

from bench.bench_llm_quant import GgufTokens, read_along, reference_texts, xllamacpp_server

from vocalis.providers.embedded import assets
from vocalis.settings import Settings


@pytest.fixture(scope="module")
def shipped() -> Path:
    try:
        return assets.ensure_assets(Settings(embedded_llm_requantize=False)).llm_model
    except assets.MissingModelError as exc:
        pytest.skip(f"models not prepared: {exc}")


def test_its_tokens_are_the_ones_llama_cpp_makes_of_the_texts(shipped: Path) -> None:
    tokens = GgufTokens(shipped)
    server = xllamacpp_server(shipped)
    for text in reference_texts().values():
        reply = server.handle_completions({"prompt": text, "n_predict": 1, "temperature": 0})
        assert reply["usage"]["prompt_tokens"] == len(tokens.ids(text))


def test_reading_along_scores_every_position_and_knows_an_easy_word(shipped: Path) -> None:
    tokens = GgufTokens(shipped)
    text = "One, two, three, four, five, six, seven, eight"
    ids = tokens.ids(text)
    (rows,) = read_along(shipped, {"count": ids}).values()
    assert len(rows) == len(ids) - 1
    # the last number is all but certain after the first seven
    last_logprob, top = rows[-1]
    assert top == ids[-1] and not math.isnan(last_logprob) and last_logprob > math.log(0.5)

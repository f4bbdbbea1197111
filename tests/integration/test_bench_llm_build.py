"""The llama.cpp speed benchmark runs in the test suite on the real model, so it cannot rot:
it reads the provider's DEBUG account of each request, whose wording could drift."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")

from bench.bench_llm_build import main


def test_llm_build_bench_reads_llama_cpp_accounts_and_draws_its_plot(tmp_path: Path) -> None:
    plot = tmp_path / "llm_build.png"
    results = main(["--runs", "1", "--threads", "1", "--generate", "16", "--plot", str(plot)])
    figures = results[1]
    assert figures["prompt_tps"] > 0 and figures["gen_tps"] > 0
    # the turn tail reuses the cached system prompt: a few words and the template, not ~300
    assert 0 < figures["tail_tokens"] < 40
    assert plot.stat().st_size > 0

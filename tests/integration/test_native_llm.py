"""The set-up's llama.cpp build (scripts/native-llm.sh) is the one the embedded LLM loads.

``make`` rebuilds xllamacpp for the machine's CPU and records the outcome in the venv; a build that
silently fell back to the portable wheel, or a native wheel that lost its AVX-512 kernels, would
only show as slower replies, so it is checked here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")

from vocalis.providers.embedded.llm import cpu_features

MARKER = Path(sys.prefix) / ".native-llm"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_cpu_features_name_what_the_loaded_build_uses() -> None:
    if "avx2" not in cpu_flags():
        pytest.skip("no AVX2 on this CPU: nothing either build must show")
    assert "AVX2" in cpu_features().split()  # both builds use AVX2 on such a CPU


def test_the_native_build_is_loaded_where_the_set_up_built_it() -> None:
    if not MARKER.exists():
        pytest.skip("this venv was not set up by make (no .native-llm record)")
    record = MARKER.read_text().strip()
    if record.startswith("prebuilt"):
        pytest.skip(f"the set-up kept the prebuilt wheel: {record}")
    assert record.startswith("native ")
    features = cpu_features().split()
    if "avx512f" in cpu_flags():
        assert "AVX512" in features, f"native build without AVX-512: {features}"
    if "avx512_vnni" in cpu_flags():
        assert "AVX512_VNNI" in features

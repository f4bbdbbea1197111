import numpy as np
import pytest

from vocalis.audio.chunker import Chunker
from vocalis.audio.formats import PCM, PCMA, PCMU


@pytest.mark.parametrize(("encoding", "size"), [(PCM, 960), (PCMU, 160), (PCMA, 160)])
def test_default_chunk_is_20ms(encoding: str, size: int) -> None:
    chunker = Chunker(encoding)
    assert chunker.chunk_bytes == size
    chunks = chunker.push(bytes(size * 3 + 7))
    assert [len(c) for c in chunks] == [size] * 3
    assert chunker.pending_bytes == 7
    tail = chunker.flush()
    assert tail is not None
    assert len(tail) == 7
    assert chunker.flush() is None


def test_chunk_duration_is_configurable() -> None:
    assert Chunker(PCM, chunk_ms=100).chunk_bytes == 4800
    assert Chunker(PCMU, chunk_ms=10).chunk_bytes == 80


def test_incremental_pushes_preserve_bytes_and_order() -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 10_001, dtype=np.uint8).tobytes()
    chunker = Chunker(PCM)
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        step = int(rng.integers(1, 1500))
        out += chunker.push(data[pos : pos + step])
        pos += step
    assert all(len(c) == 960 for c in out)
    tail = chunker.flush()
    assert tail is not None
    assert len(tail) == 10_001 % 960
    assert b"".join([*out, tail]) == data


def test_small_pushes_wait_for_a_full_chunk() -> None:
    chunker = Chunker(PCMU)
    assert chunker.push(bytes(100)) == []
    assert [len(c) for c in chunker.push(bytes(60))] == [160]
    assert chunker.flush() is None


def test_reset_discards_pending() -> None:
    chunker = Chunker(PCMA)
    chunker.push(bytes(50))
    chunker.reset()
    assert chunker.flush() is None

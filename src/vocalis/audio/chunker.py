"""Cuts a reply's output byte stream into ``reply.audio`` wire chunks of fixed duration (§10.4)."""

from __future__ import annotations

from vocalis.audio.formats import bytes_for_ms


class Chunker:
    """Accumulates encoded output bytes and hands out whole chunks of ``chunk_ms``.

    20 ms is 960 bytes of PCM 24 kHz and 160 bytes of mu-law/A-law. The reply's last chunk,
    returned by :meth:`flush`, may be shorter.
    """

    def __init__(self, encoding: str, chunk_ms: int = 20) -> None:
        self.encoding = encoding
        self.chunk_ms = chunk_ms
        self.chunk_bytes = bytes_for_ms(encoding, chunk_ms)
        if self.chunk_bytes <= 0:
            raise ValueError(f"chunk of {chunk_ms} ms holds no samples")
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes held back, short of a full chunk."""
        return len(self._buffer)

    def push(self, data: bytes) -> list[bytes]:
        """Add bytes; return every full chunk now available, in order."""
        self._buffer += data
        size = self.chunk_bytes
        full = len(self._buffer) // size * size
        if not full:
            return []
        chunks = [bytes(self._buffer[i : i + size]) for i in range(0, full, size)]
        del self._buffer[:full]
        return chunks

    def flush(self) -> bytes | None:
        """The final, possibly short chunk, or ``None`` if nothing is left."""
        if not self._buffer:
            return None
        tail = bytes(self._buffer)
        self._buffer.clear()
        return tail

    def reset(self) -> None:
        """Discard held bytes (reply interrupted)."""
        self._buffer.clear()

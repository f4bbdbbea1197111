"""The reply pacer in virtual time: real-time lead, and no catch-up burst after an underrun
(counted, with the silence the listener heard)."""

from __future__ import annotations

import asyncio

import numpy as np

from vocalis.session.clock import FakeClock
from vocalis.session.output import OutChunk, ReplyOutput
from vocalis.session.text import TimedWord

RATE = 1000  # 1 sample per ms keeps the arithmetic readable
CHUNK_MS = 20
LEAD_MS = 200


def _seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * RATE), dtype=np.float32)


async def _drain_ready(out: ReplyOutput, clock: FakeClock) -> list[OutChunk]:
    """Chunks the pacer hands out without any virtual time passing."""
    sent: list[OutChunk] = []

    async def pace() -> None:
        while True:
            chunk = await out.next_chunk()
            if chunk is None:
                return
            out.mark_sent(chunk)
            sent.append(chunk)

    task = asyncio.create_task(pace())
    await clock.settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return sent


def test_the_pacer_keeps_only_the_lead_ahead_of_real_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        out = ReplyOutput(clock, RATE, CHUNK_MS, LEAD_MS)
        out.add_sentence(_seconds(2.0), [])
        burst = await _drain_ready(out, clock)
        assert out.sent_ms == LEAD_MS  # the lead, then real time
        assert len(burst) == LEAD_MS // CHUNK_MS

    asyncio.run(scenario())


def test_audio_after_an_underrun_is_paced_from_its_arrival_not_burst_out() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        out = ReplyOutput(clock, RATE, CHUNK_MS, LEAD_MS)
        out.add_sentence(_seconds(1.0), [])
        while out.sent_ms < 1000:  # the first sentence plays out in real time
            await _drain_ready(out, clock)
            await clock.advance(CHUNK_MS / 1000)
        assert out.dry_spells == 0  # played out in time, with the lead to spare
        assert out.t_first is not None
        heard_until = out.t_first + out.sent_ms / 1000  # the end of the audio sent, played out
        await clock.advance(3.0)  # the next sentence is 3 s late: the listener hears nothing
        assert round(out.playout_ms()) == 1000
        out.add_sentence(_seconds(5.0), [])
        burst = await _drain_ready(out, clock)
        # counted once, for the silence heard: from the end of the audio sent to the arrival
        assert out.dry_spells == 1
        assert round(out.dry_ms) == round((clock.now() - heard_until) * 1000)
        # the late sentence starts on arrival with the usual lead, not 3 s of catch-up at once
        assert out.sent_ms - 1000 == LEAD_MS
        assert len(burst) == LEAD_MS // CHUNK_MS
        # and what the listener has heard counts from its arrival, not the gap
        assert round(out.playout_ms()) == 1000
        await clock.advance(0.1)
        assert round(out.playout_ms()) == 1100

    asyncio.run(scenario())


def test_a_reply_ending_on_a_piece_without_audio_keeps_its_words() -> None:
    """A last piece with nothing to say aloud (a list marker "3. ") adds words but no samples:
    closing the reply attaches them to its last chunk (it raised on the empty buffer)."""

    async def scenario() -> None:
        clock = FakeClock()
        out = ReplyOutput(clock, RATE, CHUNK_MS, LEAD_MS)
        out.add_sentence(_seconds(0.11), [TimedWord("Steps: ", 0, 110)])  # a short last chunk
        out.add_sentence(_seconds(0.0), [TimedWord("3. ", 110, 110)])
        out.close()
        chunks = []
        while (chunk := await out.next_chunk()) is not None:
            out.mark_sent(chunk)
            chunks.append(chunk)
            await clock.advance(CHUNK_MS / 1000)
        assert [w.text for c in chunks for w in c.words] == ["Steps: ", "3. "]

    asyncio.run(scenario())

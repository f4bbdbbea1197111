"""Which partial transcripts to evaluate into the model's cache while the user still speaks.

On the 2-core target a new turn's prompt costs the local model ~12 ms per token to evaluate
(1 thread, measured in isolation; 20-40 ms per token while other sessions run), and a turn adds
20-50 tokens: the user's words and the chat template around them. Evaluated only once the turn
ends, they stand between the final transcript and the reply's first word. The partial
transcripts already hold most of those words, so the session sends the prompt as it would be
with the partial text as the user's message to a model that can cache it (``prefill``); when
the turn ends, the reply's prompt shares everything up to where the final text differs.

Pure policy, no tasks: the session offers each partial and reports each finished warm-up; this
says what to send. One warm-up in flight per session (a busy model gets no queue of stale
prompts), at most one every :data:`WARM_EVERY_S`, always the latest text.

Measured and not done (bench_voice ``min_latency``, alternated runs, 2026-12-02): waiving the
spacing once the speech pauses, so the latest partial is warmed before the final transcript,
made the final 35-40 ms later (its printed median 294 / 287 against 251 / 258 ms: the warm-up
runs beside Whisper's final decode) for no gain, v2v P50 0.755 / 0.771 s against 0.760 / 0.768 s
without. In a traced run (the provider's DEBUG log, not a benchmark's figure) 18 of 19 replies
then had nothing left to evaluate, but a reply whose final arrived while a warm-up ran waited
for that warm-up's batch. Warming every 0.45 s slowed the final the same way (traced: median
168 against 116-123 ms from its request; v2v P50 0.760 s).
"""

from __future__ import annotations

#: Seconds between two warm-ups of one turn. Partials come every ~0.3 s; each warm-up is a
#: model request (prompt tail plus one generated token), so every partial would cost a third of
#: a core per speaking caller, for a few words each.
WARM_EVERY_S = 0.9


class PromptWarmer:
    """Rate and order of one session's prompt warm-ups."""

    def __init__(self, every_s: float = WARM_EVERY_S) -> None:
        self._every = every_s
        self._in_flight = False
        self._last_sent_at: float | None = None
        self._last_text = ""
        self._pending: str | None = None

    def offer(self, text: str, now: float) -> str | None:
        """A new partial transcript; the text to warm now, or ``None`` (kept for later if newer)."""
        text = text.strip()
        if not text or text == self._last_text:
            return None
        self._pending = text
        return self._take(now)

    def finished(self, now: float) -> str | None:
        """The warm-up in flight is done; a newer text to warm now, if one is due."""
        self._in_flight = False
        return self._take(now)

    def turn_ended(self) -> None:
        """The turn was decided: its reply's own request takes over; nothing left to warm."""
        self._pending = None
        self._last_text = ""
        self._last_sent_at = None

    def _take(self, now: float) -> str | None:
        if self._pending is None or self._in_flight:
            return None
        if self._last_sent_at is not None and now - self._last_sent_at < self._every:
            return None
        text, self._pending = self._pending, None
        self._in_flight = True
        self._last_sent_at = now
        self._last_text = text
        return text

"""Text helpers for speech: sentence cutting for TTS, word deltas with timings, backchannels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A full stop after a title is not a sentence end: "Mr. " alone made a piece of its own (said
# as a sentence, with its pause) in front of "Hale was...". Lookbehinds are fixed-width, so one
# per title.
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "Prof", "Sr", "Jr", "St", "vs")
_SENTENCE_END = re.compile(
    "".join(rf"(?<!\b{title})" for title in _TITLES) + r"[.!?…]+[\"')\]]*\s+|\n+"
)
_SOFT_BREAK = re.compile(r"[,;:]\s+")
_WORD = re.compile(r"\S+\s*")
_NON_WORD = re.compile(r"[^\w\s'-]+")
MAX_SENTENCE_CHARS = 220


def _closes_clause(word: str) -> bool:
    """A word (with its trailing whitespace) ends on a comma, semicolon or colon."""
    return _SOFT_BREAK.match(word[len(word.rstrip()) - 1 :]) is not None


class SentenceSplitter:
    """Cuts streamed model text into sentences as soon as each one is complete.

    A sentence keeps its trailing whitespace (it is known once the next character arrives), so the
    word deltas of a reply concatenate exactly to its text. Very long sentences are cut at a comma
    so the first audio is not held back by a run-on sentence, and the reply's first piece is cut
    early (at a comma after a few words, or after ``FIRST_MAX_WORDS``): on a small CPU the model
    writes ~10 words a second, so waiting for a whole first sentence costs a second of silence.
    """

    # 2 / 6 rather than 4 / 8: bench_voice (balanced) commit -> first audio P50 180 -> 74 ms
    FIRST_MIN_WORDS = 2
    FIRST_MAX_WORDS = 6
    #: Once the caller is waiting (the turn was committed), the first piece is cut after this
    #: many words, comma or not: every word more is ~40 ms of decoding before any sound. While
    #: the reply is still prepared during the pause (speculatively) there is time to wait for a
    #: more natural cut.
    FIRST_WAITING_WORDS = 3
    #: A later piece is cut early too once the listener has less than this much of the reply's audio
    #: left to hear (``runway_ms``): the text so far is said now, at its last comma if there is one,
    #: rather than leave a silence while the sentence is finished. With the LLM stopped while a
    #: piece is synthesised (``embedded_llm_max_ahead``), the rest of a sentence after a three-word
    #: first piece was written and then synthesised while only that piece played: with 4 callers at
    #: once the listener's audio ran dry about once a reply, for 0.1-4 s (a probe logging each
    #: underrun with its piece). 4 callers at once (``bench_load --callers 4 --burst 4 --turns 4``,
    #: 3 runs each way alternating, 96 turns each, ``--pool``), with ``Reply._speech_priority``: the
    #: listener's audio ran dry 7.2 times a row of 16 turns for 1.6 s in all, against 14.7 times for
    #: 22.4 s; v2v P50 1.69 / P95 2.48 s against 1.68 / 2.81 s; 5.7 pieces a reply against 4.0 (the
    #: probe's count). Measured and not kept: cutting when the runway less 1.5 times the reply's
    #: last synthesis fell below 250 ms (later cuts while the voice is fast): 22.8 times and 9.1 s a
    #: row against 11.8 times and 4.9 s with this rule (2 runs each, such pieces then synthesised as
    #: first pieces; the model writes nothing while it steps aside for other replies' first words,
    #: up to 0.6 s, so a later cut came too late).
    LOW_RUNWAY_MS = 800
    #: ... but not before this many words: a one-word piece is said as a sentence of its own.
    LATER_MIN_WORDS = 2

    def __init__(self) -> None:
        self._buf = ""
        self._started = False
        self._emitted = False

    def push(
        self, delta: str, *, waiting: bool = False, runway_ms: float | None = None
    ) -> list[str]:
        """Pieces completed by ``delta``. ``waiting``: the caller is waiting for the first sound
        (the first piece is then cut after ``FIRST_WAITING_WORDS``); ``runway_ms``: while the
        reply plays, how much of its audio the listener has still to hear (a later piece is
        cut early below ``LOW_RUNWAY_MS``)."""
        if not self._started:
            delta = delta.lstrip()
            if not delta:
                return []
            self._started = True
        self._buf += delta
        out: list[str] = []
        while True:
            match = _SENTENCE_END.search(self._buf)
            # cut only once more text follows, so the reply's last sentence can drop its
            # trailing whitespace
            if match is None or not self._buf[match.end() :].strip():
                break
            out.append(self._buf[: match.end()])
            self._buf = self._buf[match.end() :]
        if len(self._buf) > MAX_SENTENCE_CHARS:
            breaks = [b for b in _SOFT_BREAK.finditer(self._buf) if self._buf[b.end() :].strip()]
            if breaks:
                soft = breaks[-1]
                out.append(self._buf[: soft.end()])
                self._buf = self._buf[soft.end() :]
        if not out and not self._emitted:
            first = self._first_piece(self.FIRST_WAITING_WORDS if waiting else self.FIRST_MAX_WORDS)
            if first:
                out.append(first)
        elif not out and runway_ms is not None and runway_ms < self.LOW_RUNWAY_MS:
            early = self._early_piece()
            if early:
                out.append(early)
        out = [s for s in out if s.strip()]
        self._emitted = self._emitted or bool(out)
        return out

    def _first_piece(self, max_words: int) -> str | None:
        """An early cut of the reply's opening words, or None to keep waiting."""
        words = _WORD.findall(self._buf)
        complete = words[:-1]  # the last word may still be growing
        for count, word in enumerate(complete, 1):
            soft = _closes_clause(word)
            if (soft and count >= self.FIRST_MIN_WORDS) or count >= max_words:
                return self._cut(count, words)
        return None

    def _early_piece(self) -> str | None:
        """A later piece cut before its sentence ends: up to the last comma that has at least
        ``LATER_MIN_WORDS`` words before it, else every complete word."""
        words = _WORD.findall(self._buf)
        complete = words[:-1]  # the last word may still be growing
        if len(complete) < self.LATER_MIN_WORDS:
            return None
        soft = [
            count
            for count, word in enumerate(complete, 1)
            if count >= self.LATER_MIN_WORDS and _closes_clause(word)
        ]
        return self._cut(soft[-1] if soft else len(complete), words)

    def _cut(self, n_words: int, words: list[str]) -> str:
        piece = "".join(words[:n_words])
        self._buf = self._buf[len(piece) :]
        return piece

    @property
    def pending(self) -> bool:
        """Text received but not yet cut into a piece."""
        return bool(self._buf.strip())

    def flush(self) -> str:
        """The rest of the text, without trailing whitespace (the reply ends here)."""
        rest, self._buf = self._buf.rstrip(), ""
        return rest


@dataclass(frozen=True)
class TimedWord:
    text: str  # the word plus its trailing whitespace
    start_ms: int
    end_ms: int


def split_words(sentence: str) -> list[str]:
    return _WORD.findall(sentence)


def time_words(sentence: str, offset_ms: int, duration_ms: int) -> list[TimedWord]:
    """Spread a sentence's audio over its words in proportion to their letters."""
    words = split_words(sentence)
    if not words:
        return []
    weights = [max(1, len(w.strip())) for w in words]
    total = sum(weights)
    out: list[TimedWord] = []
    acc = 0
    for word, weight in zip(words, weights, strict=True):
        start = offset_ms + duration_ms * acc // total
        acc += weight
        end = offset_ms + duration_ms * acc // total
        out.append(TimedWord(word, start, end))
    return out


def normalize_words(text: str) -> str:
    """Lowercase, punctuation removed (hyphens and apostrophes kept), spaces collapsed."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


#: Hesitation sounds (Vocalis decision) are heard like backchannels: "uh", or "uh-uh" as a
#: recogniser often writes a short "uh huh", does not interrupt the agent. They still count as
#: recognised words, so the no-word rule (a cough, noise) does not fire on them either.
FILLERS = frozenset({"uh", "um", "uhm", "er", "erm", "ah", "eh", "hm", "hmm", "mm"})


def _is_filler(token: str) -> bool:
    return all(part in FILLERS for part in token.split("-") if part)


def has_non_backchannel_word(text: str, backchannels: Sequence[str]) -> bool:
    """True if ``text`` holds a word outside the backchannel phrases and fillers (§11.4)."""
    remaining = normalize_words(text)
    phrases = sorted((normalize_words(b) for b in backchannels), key=len, reverse=True)
    while remaining:
        for phrase in phrases:
            if phrase and (remaining == phrase or remaining.startswith(phrase + " ")):
                remaining = remaining[len(phrase) :].lstrip()
                break
        else:
            token, _, rest = remaining.partition(" ")
            if not _is_filler(token):
                return True
            remaining = rest
    return False


def has_word(text: str) -> bool:
    return bool(normalize_words(text))

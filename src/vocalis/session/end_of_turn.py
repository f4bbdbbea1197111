"""End of turn from audio AND text (contract §11.3, ``semantic_vad``): a pure decision.

Smart Turn hears prosody only, and on read speech it calls about a third of finished sentences
unfinished; the final transcript says what the words say. Neither is enough alone: a reader's
falling pitch on "...and" fools the audio model, and a recogniser ends almost every
transcript with a full stop. So the transcript is sorted into one of four *endings*, and the
turn-model probability decides only where the words leave room for doubt:

* ``CONTINUES``: it ends on a conjunction, article, possessive, an "of"/"to"-like preposition
  or a filler ("and", "the", "of", "um"), trails off ("...", a dash), or stops inside an
  entity a tool expects (3 of 10 digits, "john at gmail", "on March") → INCOMPLETE, whatever
  the audio says.
* ``FINAL``: ".", "!" or "?" after any other word → COMPLETE, unless the audio is very sure
  it is not finished (P < ``final_veto_prob``) → UNSURE.
* ``LEANS_ON``: a comma or colon, no final punctuation, or a word that often but not always
  continues ("in", "so", "is"; digits while a number is expected) → the audio decides
  (such a word with no final punctuation at all counts as ``CONTINUES``):
  P ≥ 0.8 COMPLETE, P ≥ 0.5 UNSURE, else INCOMPLETE. With no closing mark at all the text
  never makes it COMPLETE (UNSURE at best; see ``Policy.bare_text_can_complete``).
* ``EMPTY``: nothing was recognised → COMPLETE (there is nothing to wait for).

With no probability (no turn model, or it failed) the audio column is skipped: ``FINAL`` and
``EMPTY`` are complete, ``LEANS_ON`` unsure, ``CONTINUES`` incomplete.

A verdict becomes a silence deadline (:func:`deadline_ms`): COMPLETE ends the turn at
``min_silence``, INCOMPLETE at ``max_silence``, UNSURE halfway between, so a doubtful turn
costs some latency instead of a cut-off (and at least ``Policy.unsure_floor_ms``, 1.3 s: longer
than a thinking pause). Speech that resumes before the deadline continues the
turn (the caller resets its timers and asks again on the next pause).

Everything here is pure and synchronous: strings and numbers in, a value out.

Measured and not done: the embedded LLM as a third judge, reading P(``<|im_end|>``) after the
user's words in its chat template (what LiveKit's turn detector does with a fine-tuned Qwen;
one extra token on a prefix the reply shares). On the final transcripts of ``bench_turns``'
variants (232 distinct texts; ranges read from ``balanced``), Qwen2.5-Coder-0.5B-Instruct as
shipped gave finished sentences 0.00-0.46 and mid-sentence pauses 0.00-0.83 (0.00 for almost
all without punctuation): no threshold separates them, so without fine-tuning it adds nothing
to the rules below.

Also measured and not done (a probe, not kept as a benchmark): a second look by the turn
model later in the pause. Smart Turn on the speech set's points (18 finished sentences; 52
hesitation and 13 phrase pauses of ``bench_turns``) with 200 / 400 / 600 ms of the clip's room
tone after the last word: finished sentences at P >= 0.5 15 / 15 / 14, but hesitations 14 / 30
/ 29 (P >= 0.8: 11 / 20 / 25), so the model grows surer of "finished" with any silence,
mid-sentence too; and the two finished sentences this rule still makes wait (asr_07 "...hard
by.", asr_10 "...the worst of her.") stay below the veto at 600 ms (0.037, 0.012). Waiting
longer only told it what the silence deadline already knows.

What the remaining cut-offs are (``bench_turns --show``, 2026-12-03, AVX2-only host): most are
Whisper completing a sentence cut at a function word, with the turn model agreeing: "...the
medical practitioner is intact." (cut after "in", P 0.98), "...that evening the tooth." (after
"the", P 0.09), "...in passing that has a nickname." (after "as", P 0.46), or dropping the
word ("somehow," for "somehow or", P 0.92). Measured and not done (a probe, Whisper's word
probabilities with ``word_timestamps``): the invented last words scored 0.20-0.99 ("touch."
0.84, "her." 0.96, "arm." 0.26) and real last words of finished sentences 0.28-0.99 ("Phil."
0.28, "food." 0.49), so no threshold separates them, and the decode took 219 ms median
instead of 146.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from vocalis.session.text import FILLERS


class Verdict(Enum):
    COMPLETE = "complete"  # end at min_silence
    UNSURE = "unsure"  # wait part of the way to max_silence
    INCOMPLETE = "incomplete"  # wait for max_silence


class Ending(Enum):
    EMPTY = "empty"
    FINAL = "final"
    LEANS_ON = "leans_on"
    CONTINUES = "continues"


class Entity(Enum):
    """Entities a tool parameter can expect (§11.3): the caller derives them from tool schemas."""

    DIGITS = "digits"  # an account or order number, a code
    PHONE = "phone"  # a phone number: at least PHONE_MIN_DIGITS digits
    EMAIL = "email"
    DATE = "date"


@dataclass(frozen=True)
class Expect:
    """One entity the conversation is waiting for, e.g. ``Expect(Entity.DIGITS, digits=6)``."""

    entity: Entity
    digits: int | None = None  # exact or minimum count for DIGITS; PHONE defaults to 7


@dataclass(frozen=True)
class Policy:
    """Thresholds of the combined rule; the defaults are the tuned ones.

    ``bench_turns --sweep`` (20 clips, tuned on the same clips, so optimistic): a veto at 0.05
    keeps 90 % of complete utterances ending at min_silence (balanced) and cuts off slightly
    fewer hesitations than 0.02; 0.1 and above save a few more hesitations but make a tenth
    more of the finished sentences wait. Below 0.01 asr_07 ("...I heard him hard by.", audio
    0.0099) ends at min_silence too (17 of 18 finished sentences), but hesitations kept fall to
    92.8 % ``balanced`` and 87.0 % ``min_latency`` (0.01: 94.7 / 90.9 %; 0.05: 97.6 / 95.7 %).
    Reading "hard by" as an adverb (a list of phrasal particles made FINAL) changed nothing on
    the set for the same reason (the veto still holds it), so it was not kept.
    """

    #: FINAL text ends the turn unless the audio is this sure it is not finished.
    final_veto_prob: float = 0.05
    #: LEANS_ON text ends the turn at min_silence only when the audio is this sure.
    leaning_complete_prob: float = 0.8
    #: ... and is unsure (not incomplete) from this probability up.
    leaning_unsure_prob: float = 0.5
    #: UNSURE waits this fraction of the way from min_silence to max_silence...
    unsure_fraction: float = 0.5
    #: ... but at least this much silence (never past max_silence): a doubtful turn outwaits
    #: a thinking pause of up to ~1.2 s in every mode. Halfway is 1650 ms in ``balanced``
    #: but only 1000 ms in ``min_latency``, where bench_turns (row "engine, unsure halfway")
    #: cut off 28.8 % of 1.2 s mid-sentence pauses, most at that 1000 ms deadline; with 1300:
    #: 7.7 %, hesitations kept 89.4 -> 95.7 %, phrase pauses 39.6 -> 45.8 %, finished
    #: sentences ending at min_silence unchanged (88.9 %), ``balanced`` unchanged. The price:
    #: a finished sentence judged UNSURE (the audio model sure it is not done) waits 0.3 s more
    #: in ``min_latency``.
    unsure_floor_ms: int = 1300
    #: May a transcript with no closing punctuation at all be COMPLETE (when the audio is
    #: sure)? Not with a recogniser that punctuates, as both built-in ones do (Whisper, and
    #: OpenAI-compatible transcription): in ``bench_turns`` Whisper closed 17 of 18 finished
    #: sentences with a mark, and left the text open where it heard speech break off ("He who
    #: recited the f", "who had not had") while Smart Turn, hearing a falling pitch, said
    #: 0.8-0.98 complete: with this True, 28 of min_latency's 64 cut-offs (12 of balanced's
    #: 34) ended on open text. Such text now waits as UNSURE (hesitations kept 83.2 -> 89.4 %
    #: min_latency, 93.3 -> 97.6 % balanced, complete at min_silence unchanged; measured
    #: before ``unsure_floor_ms``, with which the old rule's row reads 87.5 % min_latency).
    bare_text_can_complete: bool = False


DEFAULT_POLICY = Policy()
PHONE_MIN_DIGITS = 7


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    ending: Ending
    reason: str  # for logs and metrics labels: which rule decided


# ----------------------------------------------------------------------------- word lists
#: A sentence cannot end on these (in English, outside a question like "what for?").
CONTINUING_WORDS = frozenset(
    {
        # coordinating and subordinating conjunctions
        *("and", "but", "or", "nor", "because", "cause", "although", "though", "unless"),
        *("until", "whereas", "if", "whether", "than", "while"),
        # articles and possessive determiners
        *("the", "a", "an", "my", "your", "our", "their", "its", "every", "each"),
        # prepositions that need an object
        *("of", "to", "for", "with", "into", "onto", "towards", "toward", "between"),
        *("during", "without", "including", "per", "via"),
        # filler phrases that announce more
        *("um", "uh", "erm", "er", "uhm"),
    }
)
#: Words a sentence usually continues after but can end on ("turn it on", "I think so").
LEANING_WORDS = frozenset(
    {
        *("in", "on", "at", "by", "up", "off", "out", "over", "down", "about", "around"),
        *("through", "after", "before", "under", "from", "so", "that", "this", "these"),
        *("some", "any", "is", "are", "was", "were", "be", "will", "would", "can", "could"),
        *("should", "i", "we", "they", "he", "she", "those", "just", "then", "also", "maybe"),
        *("which", "who", "where", "what", "like", "well", "actually", "basically"),
        *("mean", "know"),  # "I mean", "you know" as fillers
        *("her", "his"),  # determiners ("her car") but also pronouns that end sentences
    }
)
DIGIT_WORDS = frozenset(
    {"zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
)
MONTHS = frozenset(
    {
        *("january", "february", "march", "april", "may", "june", "july", "august"),
        *("september", "october", "november", "december"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)

_TOKEN = re.compile(r"[\w'@.+-]+")
_TRAILING_MARKS = re.compile(r"[\s\"')\]]*$")
_EMAIL_AT = re.compile(r"(@|\bat\b)", re.IGNORECASE)
_EMAIL_TAIL_WORDS = frozenset({"at", "dot", "underscore", "dash", "hyphen", "plus"})


def _bare(token: str) -> str:
    return token.lower().strip(".,!?;:'\"-…")


def _words(text: str) -> list[str]:
    return [w for w in (_bare(t) for t in _TOKEN.findall(text)) if w]


def _final_mark(text: str) -> str:
    """The punctuation the text ends with ("", ".", "?", "...", ","...), quotes ignored."""
    body = _TRAILING_MARKS.sub("", text)
    match = re.search(r"[.!?…,;:\-—–]+$", body)
    return match.group(0) if match else ""


# ----------------------------------------------------------------------------- entities
def _trailing_digits(words: list[str]) -> int:
    """How many digits the trailing run of digit tokens ("4 4 7", "four oh two", "447") holds."""
    count = 0
    for word in reversed(words):
        plain = word.replace("-", "")
        if plain.isdigit():
            count += len(plain)
        elif word in DIGIT_WORDS:
            count += 1
        elif word in {"double", "triple"}:
            count += 1 if word == "double" else 2
        else:
            break
    return count


def _email_unfinished(text: str, words: list[str]) -> bool:
    if not words:
        return False
    if words[-1] in _EMAIL_TAIL_WORDS or text.rstrip().endswith(("@", "_")):
        return True
    at = list(_EMAIL_AT.finditer(text))
    if not at:
        return False
    domain = text[at[-1].end() :]
    # a domain needs a dot (or "dot") and a part after it
    return re.search(r"(\.|\bdot\b)\s*[a-z]{2,}", domain, re.IGNORECASE) is None


def _entity_unfinished(text: str, words: list[str], expected: Iterable[Expect]) -> str | None:
    """Why the text ends inside an expected entity, or None."""
    for want in expected:
        if want.entity in (Entity.DIGITS, Entity.PHONE):
            have = _trailing_digits(words)
            need = want.digits or (PHONE_MIN_DIGITS if want.entity is Entity.PHONE else None)
            if need is not None and 0 < have < need:
                return f"{want.entity.value}: {have} of {need} digits"
        elif want.entity is Entity.EMAIL and _email_unfinished(text, words):
            return "email: no complete domain yet"
        elif want.entity is Entity.DATE and words and words[-1] in MONTHS:
            return "date: a month without its day"
    return None


# ----------------------------------------------------------------------------- the rules
def text_ending(text: str, expected: Iterable[Expect] = ()) -> tuple[Ending, str]:
    """Sort a final transcript by how it ends; returns (ending, the rule that matched)."""
    words = _words(text)
    if not words:
        return Ending.EMPTY, "no words"
    expected = tuple(expected)
    unfinished = _entity_unfinished(text, words, expected)
    if unfinished is not None:
        return Ending.CONTINUES, unfinished
    last = words[-1]
    mark = _final_mark(text)
    if last in CONTINUING_WORDS or last in FILLERS:
        return Ending.CONTINUES, f"ends on {last!r}"
    if "…" in mark or ".." in mark or mark[-1:] in {"-", "—", "–"}:
        return Ending.CONTINUES, "trails off"
    if mark[-1:] in {"?", "!"}:
        return Ending.FINAL, f"ends with {mark[-1]!r}"
    if last in LEANING_WORDS:
        if not mark:  # the recogniser did not close the sentence either
            return Ending.CONTINUES, f"ends on {last!r} with no final punctuation"
        return Ending.LEANS_ON, f"ends on {last!r}"
    if expected and _trailing_digits(words) > 0:
        return Ending.LEANS_ON, "ends on digits while a number is expected"
    if mark[-1:] == ".":
        return Ending.FINAL, "ends with '.'"
    if mark:
        return Ending.LEANS_ON, f"ends with {mark[-1]!r}"
    return Ending.LEANS_ON, "no final punctuation"


def judge(
    prob: float | None,
    text: str,
    expected: Iterable[Expect] = (),
    policy: Policy = DEFAULT_POLICY,
) -> Judgement:
    """Is the turn complete? ``prob`` is the turn model's P(complete), or None without one."""
    ending, why = text_ending(text, expected)
    if ending is Ending.EMPTY:
        return Judgement(Verdict.COMPLETE, ending, why)
    if ending is Ending.CONTINUES:
        return Judgement(Verdict.INCOMPLETE, ending, why)
    if ending is Ending.FINAL:
        if prob is not None and prob < policy.final_veto_prob:
            return Judgement(Verdict.UNSURE, ending, f"{why}; audio {prob:.2f} says unfinished")
        return Judgement(Verdict.COMPLETE, ending, why)
    # LEANS_ON: the audio decides
    if prob is None:
        return Judgement(Verdict.UNSURE, ending, f"{why}; no turn model")
    if prob >= policy.leaning_complete_prob:
        if not _final_mark(text) and not policy.bare_text_can_complete:
            return Judgement(Verdict.UNSURE, ending, f"{why}; audio {prob:.2f} (text left open)")
        return Judgement(Verdict.COMPLETE, ending, f"{why}; audio {prob:.2f}")
    if prob >= policy.leaning_unsure_prob:
        return Judgement(Verdict.UNSURE, ending, f"{why}; audio {prob:.2f}")
    words = _words(text)
    if _final_mark(text)[-1:] == "." and words and words[-1] in LEANING_WORDS:
        # the recogniser closed the sentence on a word that usually leads on ("hard by."):
        # worth waiting for, not worth holding the floor until max_silence
        return Judgement(Verdict.UNSURE, ending, f"{why} then '.'; audio {prob:.2f}")
    return Judgement(Verdict.INCOMPLETE, ending, f"{why}; audio {prob:.2f}")


def deadline_ms(
    verdict: Verdict, min_silence: int, max_silence: int, policy: Policy = DEFAULT_POLICY
) -> int:
    """The silence after which a turn with this verdict ends."""
    hi = max(min_silence, max_silence)
    if verdict is Verdict.COMPLETE:
        return min_silence
    if verdict is Verdict.INCOMPLETE:
        return hi
    halfway = min_silence + round((hi - min_silence) * policy.unsure_fraction)
    return min(hi, max(halfway, policy.unsure_floor_ms))


def turn_ends(
    judgement: Judgement,
    silence_ms: int,
    min_silence: int,
    max_silence: int,
    policy: Policy = DEFAULT_POLICY,
) -> bool:
    """True once ``silence_ms`` of silence has passed this judgement's deadline."""
    return silence_ms >= deadline_ms(judgement.verdict, min_silence, max_silence, policy)


# ----------------------------------------------------------------------------- from tools
_DIGITS_PATTERN = re.compile(r"^\^?(?:\\d|\[0-9\])\{(\d+)(?:,\d*)?\}\$?$")
_NAME_HINTS = (
    (Entity.EMAIL, re.compile(r"e-?mail", re.IGNORECASE)),
    (Entity.PHONE, re.compile(r"phone|mobile|\btel\b|telephone", re.IGNORECASE)),
    (Entity.DATE, re.compile(r"date|birthday|\bday\b", re.IGNORECASE)),
)


def expected_entities(schemas: Iterable[dict[str, Any]]) -> tuple[Expect, ...]:
    """The entities a session's tools ask for (§11.3), read from their JSON-schema parameters:
    a ``format`` of ``email``/``date``, a digits-only ``pattern`` (``^\\d{6}$``), or a parameter
    named like a phone number, an email address or a date. A transcript that stops inside one
    of them is not a finished turn."""
    found: dict[Entity, Expect] = {}
    for schema in schemas:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            continue
        for name, prop in properties.items():
            if not isinstance(prop, dict):
                continue
            want = _entity_of(str(name), prop)
            if want is not None and want.entity not in found:
                found[want.entity] = want
    return tuple(found.values())


def _entity_of(name: str, prop: dict[str, Any]) -> Expect | None:
    fmt = prop.get("format")
    if fmt == "email":
        return Expect(Entity.EMAIL)
    if fmt in ("date", "date-time"):
        return Expect(Entity.DATE)
    pattern = prop.get("pattern")
    if isinstance(pattern, str):
        match = _DIGITS_PATTERN.match(pattern)
        if match:
            return Expect(Entity.DIGITS, digits=int(match.group(1)))
    for entity, hint in _NAME_HINTS:
        if hint.search(name):
            return Expect(entity)
    return None

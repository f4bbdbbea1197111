"""Speech-ready text: what the TTS voice is given instead of the model's written reply.

Replies are heard, not read. A language model writes markdown, code, emoji and digits; a TTS
voice reads them literally ("asterisk asterisk", "dollar sign five") or skips them, and Piper's
phonemiser says "1999" digit by digit. So, before synthesis, the reply is rewritten the way a
person would say it: markup and emoji dropped, list items turned into sentences, symbols and
numbers spelled out (decimals, ordinals, years, times, money).

Only the audio uses this text; the transcript keeps what the model wrote (contract: the agent
transcript is the reply's text). Everything is pure: a string in, a string out.
"""

from __future__ import annotations

import re
import unicodedata

# ----------------------------------------------------------------------------- numbers
_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_words(n: int) -> str:
    """A whole number as words: 1234 → "one thousand two hundred thirty-four"."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """21 → "twenty-first", 100 → "one hundredth"."""
    words = number_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split()[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(n: int) -> str:
    """How a year is said: 1999 → "nineteen ninety-nine", 2005 → "two thousand five"."""
    high, low = divmod(n, 100)
    if 2000 <= n <= 2009:
        return number_words(n)
    if low == 0:
        return f"{number_words(high)} hundred"
    if low < 10:
        return f"{number_words(high)} oh {number_words(low)}"
    return f"{number_words(high)} {number_words(low)}"


def decimal_words(text: str) -> str:
    """A decimal as read aloud: "3.14" → "three point one four"."""
    whole, _, frac = text.partition(".")
    head = number_words(int(whole.replace(",", "") or "0"))
    return head + (" point " + " ".join(_ONES[int(d)] for d in frac) if frac else "")


# ----------------------------------------------------------------------------- markup
_CODE_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\bhttps?://(?:www\.)?([^/\s]+)\S*")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>+\s?", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+", re.MULTILINE)
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_TABLE_SEP = re.compile(r"^\s*\|?[\s:|-]+\|[\s:|-]*$", re.MULTILINE)


def _is_emoji(ch: str) -> bool:
    if ch in "\u200d\ufe0f\ufe0e\u20e3":  # joiner, variation selectors, keycap
        return True
    cp = ord(ch)
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x1F1E6 <= cp <= 0x1F1FF
        or 0xE0020 <= cp <= 0xE007F
        or (unicodedata.category(ch) == "So" and cp > 0x2100 and ch not in "°")
    )


def strip_markup(text: str) -> str:
    """Markdown, code and emoji removed; list items and headings become sentences."""
    text = _CODE_FENCE.sub(" ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(lambda m: m.group(1).rstrip(".,;:"), text)
    text = _RULE.sub("", text)
    text = _TABLE_SEP.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _LIST_MARKER.sub("", text)
    for _ in range(2):  # nested emphasis: ***bold italic***
        text = _EMPHASIS.sub(r"\2", text)
    text = "".join(ch for ch in text if not _is_emoji(ch))
    text = text.replace("|", ", ")
    # a line break ends a spoken sentence: close lines that have no punctuation
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    closed = [line if line[-1] in ".!?:;," else line + "." for line in lines[:-1]]
    return " ".join([*closed, *lines[-1:]])


# ----------------------------------------------------------------------------- symbols
_CURRENCY = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}
_MONEY = re.compile(
    r"(?P<sym>[$€£])\s?(?P<num>\d[\d,]*(?:\.\d+)?)(?:\s?(?P<scale>thousand|million|billion|trillion|[kKmMbB]n?)\b)?"
)
_SCALE_WORDS = {"k": "thousand", "m": "million", "b": "billion", "bn": "billion"}
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?:\s?([aApP])\.?\s?[mM]\b)?(?!\d)")
_AMPM = re.compile(r"\b(\d{1,2})\s?([aApP])\.?[mM]\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DEGREES = re.compile(r"(-?\d+(?:\.\d+)?)\s?°\s?([CF])?\b")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_YEAR_CONTEXT = re.compile(
    r"\b(in|since|until|till|by|from|of|year|before|after|during|circa|"
    r"january|february|march|april|may|june|july|august|september|october|november|december)"
    r"(\s+[\w-]+,?)?\s+$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])(-)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
_ABBREVIATIONS = {
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "vs.": "versus",
    "approx.": "approximately",
}
_SYMBOLS = {
    "&": " and ",
    "@": " at ",
    "+": " plus ",
    "=": " equals ",
    "%": " percent ",
    "°": " degrees ",
    "#": " number ",
    "~": " about ",
    "×": " times ",
    "→": " to ",
    "/": " slash ",
    "$": " dollars ",
    "€": " euros ",
    "£": " pounds ",
}


def _plural(word: str, amount: str) -> str:
    if amount == "one":
        return word
    return "pence" if word == "penny" else word + "s"


def _money(m: re.Match[str]) -> str:
    unit, sub = _CURRENCY[m.group("sym")]
    raw = m.group("num").replace(",", "")
    scale = m.group("scale")
    if scale:
        scale = _SCALE_WORDS.get(scale.lower(), scale.lower())
        amount = decimal_words(raw) if "." in raw else number_words(int(raw))
        return f"{amount} {scale} {unit}s"
    whole, _, frac = raw.partition(".")
    main = number_words(int(whole))
    out = f"{main} {_plural(unit, main)}"
    if frac and int(frac):
        cents = number_words(int((frac + "0")[:2]))
        out += f" and {cents} {_plural(sub, cents)}"
    return out


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:
        return m.group(0)
    suffix = f" {m.group(3).upper()} M" if m.group(3) else ""
    if minute == 0:
        said = f"{number_words(hour)} o'clock" if not suffix else number_words(hour)
    elif minute < 10:
        said = f"{number_words(hour)} oh {number_words(minute)}"
    else:
        said = f"{number_words(hour)} {number_words(minute)}"
    return said + suffix


def _degrees(m: re.Match[str]) -> str:
    scale = {"C": " Celsius", "F": " Fahrenheit"}.get(m.group(2) or "", "")
    return f"{_say_number(m.group(1))} degrees{scale}"


def _say_number(raw: str) -> str:
    negative = raw.startswith("-")
    body = raw.lstrip("-")
    words = decimal_words(body) if "." in body else number_words(int(body.replace(",", "")))
    return ("minus " if negative else "") + words


def _number(m: re.Match[str], text: str) -> str:
    sign, whole, frac = m.group(1) or "", m.group(2), m.group(3) or ""
    plain = whole.replace(",", "")
    if not sign and not frac and "," not in whole and len(plain) == 4:
        value = int(plain)
        if 1100 <= value <= 2099 and _YEAR_CONTEXT.search(text[: m.start()]):
            return year_words(value)
    if len(plain) > 15:  # an identifier, not an amount: read it digit by digit
        return " ".join(_ONES[int(d)] for d in plain)
    return _say_number(sign + whole + frac)


def say_symbols(text: str) -> str:
    """Money, times, ordinals, degrees, percentages, numbers and symbols as words."""
    for short, long in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<!\w){re.escape(short)}", long, text, flags=re.IGNORECASE)
    text = _MONEY.sub(_money, text)
    text = _TIME.sub(_time, text)
    text = _AMPM.sub(lambda m: f"{number_words(int(m.group(1)))} {m.group(2).upper()} M", text)
    text = _ORDINAL.sub(lambda m: ordinal_words(int(m.group(1))), text)
    text = _DEGREES.sub(_degrees, text)
    text = _PERCENT.sub(lambda m: f"{_say_number(m.group(1))} percent", text)
    text = _NUMBER.sub(lambda m: _number(m, m.string), text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"[*_`\\<>{}\[\]^]", " ", text)
    text = re.sub(r"(?:^|(?<=\s))[-–—]+(?=\s|$)", ",", text)  # a spaced dash is a pause
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    text = re.sub(r"([.,!?;:])(?:\s*,)+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"^[\s,.;:]+", "", text)


def speech_text(text: str) -> str:
    """The reply as a voice should say it (pure; the transcript keeps ``text`` unchanged)."""
    return say_symbols(strip_markup(text))

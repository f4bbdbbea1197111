"""Speech test data and word error rate, shared by the model tests and the benchmarks."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from vocalis.session.speech_text import number_words, ordinal_words

DATA = Path(__file__).parent / "data"


def manifest(folder: Path = DATA) -> dict[str, str]:
    """File name → reference transcript, from a folder's ``manifest.tsv``."""
    with open(folder / "manifest.tsv", newline="", encoding="utf-8") as f:
        return {
            row["file"]: row["reference_transcript"] for row in csv.DictReader(f, delimiter="\t")
        }


def reference(name: str, folder: Path = DATA) -> str:
    return manifest(folder)[name]


def normalize(text: str) -> list[str]:
    """Upper-case words without punctuation; Mr. -> MISTER, digits and ordinals as words."""
    text = re.sub(r"\bMr\.?(?=\s)", "mister", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m[1])), text)
    text = re.sub(r"\b\d+\b", lambda m: number_words(int(m[0])), text)
    text = re.sub(r"[^A-Za-z' ]+", " ", text.replace("-", " "))
    return [w.strip("'") for w in text.upper().split() if w.strip("'")]


def _edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hypothesis, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance after normalisation, number of reference words)."""
    ref = normalize(reference)
    return _edit_distance(ref, normalize(hypothesis)), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, words = word_errors(reference, hypothesis)
    return errors / max(words, 1)

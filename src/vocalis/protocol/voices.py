"""The voice catalog of contract §18.1 and the languages of §18.2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogVoice:
    voice_id: str
    language: str
    description: str

    @property
    def name(self) -> str:
        return self.voice_id.capitalize()


def _group(ids: str, language: str, description: str) -> list[CatalogVoice]:
    return [CatalogVoice(v.strip(), language, description) for v in ids.split(",")]


DEFAULT_CATALOG: tuple[CatalogVoice, ...] = tuple(
    _group(
        "ivy, james, tyler, winter, bella, david, kyle, helen, martha, river, emma, victor, "
        "eleanor",
        "en",
        "English (US)",
    )
    + _group("alba, eve, george, jane, jean, mary, michael, iris, reid", "en", "English (US)")
    + _group("anna, charles, paul, vera", "en", "English (UK)")
    + _group(
        "josh, dylan, dawn, summer, andy, zoe, alexis, pete, brian, diana, grace, kai, claire, "
        "nathan, audrey, melissa, will",
        "en",
        "English",
    )
    # Withdrawn from the hosted catalog in June 2026; kept so that clients written before then
    # keep working. They speak with the default English voice unless the operator maps them.
    + _group(
        "sam, mia, jack, sophie, oliver, ethan, mei, lukas, lena, mina, joon, ren, hana",
        "en",
        "English",
    )
    + _group("pierre, estelle", "fr", "French")
    + _group("giulia, luca, giovanni", "it", "Italian")
    + _group("lucia, mateo, lola", "es", "Spanish")
    + _group("diego", "es", "Spanish (Latin American)")
    + _group("rafael", "pt", "Portuguese")
    + _group("juergen", "de", "German")
    + _group("arjun", "hi", "Hindi / Hinglish")
    + _group("dmitri", "ru", "Russian")
)

LANGUAGE_CODES: tuple[str, ...] = (
    "en",
    "es",
    "de",
    "fr",
    "pt",
    "it",
    "tr",
    "nl",
    "sv",
    "no",
    "da",
    "fi",
    "hi",
    "vi",
    "ar",
    "he",
    "ja",
    "zh",
)


def catalog_ids(catalog: tuple[CatalogVoice, ...] = DEFAULT_CATALOG) -> list[str]:
    return [v.voice_id for v in catalog]

"""Deterministic fake providers (``--providers fake``): test clients against Vocalis without models.

Behaviour, documented for client developers:

* **VAD** — energy threshold: a 32 ms frame's speech probability is ``min(1, rms / 0.02)``, so with
  the default ``vad_threshold`` 0.5 a frame louder than -40 dBFS (RMS 0.01) is speech.
* **Turn model** — a turn looks complete unless its text ends with ``and``, ``but``, ``so``,
  ``um``, ``uh`` or ``...``.
* **STT** — the final transcript of an utterance is ``speech <N> ms.``, N being its speech
  duration (the number of speech frames × 32 ms); partials report the speech heard so far,
  without the full stop.
* **LLM** — answers ``You said: <last user text>``. A user text ``call <tool_name> <json-args>``
  produces that tool call (several lines: several calls; other lines are spoken). After tool
  results it says ``Tool result: <result>.``; a one-shot
  ``reply.create`` instruction is spoken verbatim; ``say nothing`` yields an empty reply,
  ``fail <status>`` a provider error with that HTTP status, and ``slowly <text>`` writes
  ``<text>`` one word every 100 ms (a model that is still writing).
* **TTS** — a 440 Hz tone at 24 kHz lasting 50 ms per character of the sentence.
"""

from vocalis.providers.base import ProviderSet
from vocalis.providers.fake.llm import FakeLLM
from vocalis.providers.fake.speech import FakeSTT, FakeTTS, FakeTurnModel, FakeVAD


def build_fake_providers() -> ProviderSet:
    return ProviderSet(
        name="fake",
        vad=FakeVAD(),
        turn=FakeTurnModel(),
        stt=FakeSTT(),
        llm=FakeLLM(),
        tts=FakeTTS(),
        details={"all": "deterministic fakes (see vocalis.providers.fake)"},
    )


__all__ = ["FakeLLM", "FakeSTT", "FakeTTS", "FakeTurnModel", "FakeVAD", "build_fake_providers"]

"""The web page in a real headless Chromium: microphone (a speech file) -> server -> speaker.

Chromium comes from Debian (``scripts/ensure_chromium.sh`` installs it); the test is skipped,
saying why, only when it cannot be installed. A screenshot is saved to
``tests/.artifacts/browser.png``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.cdp import Page, chromium_page
from tests.e2e.live_server import LiveServer, live_server
from vocalis.audio import read_wav, write_wav

ROOT = Path(__file__).parents[2]
SPEECH = ROOT / "tests" / "data" / "tts_close_today.wav"
SCREENSHOT = ROOT / "tests" / ".artifacts" / "browser.png"
CAPTURE_RATE = 48_000  # Chromium's fake capture device runs at 48 kHz
TRAILING_SILENCE_S = 4.0  # end of turn, then the whole reply, before the file would end
WAIT_SECONDS = 45


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        found = subprocess.run(
            [str(ROOT / "scripts" / "ensure_chromium.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium is not installed and could not be installed: {exc}")
    if found.returncode != 0:
        pytest.skip(f"chromium is not installed and could not be installed: {found.stderr[-500:]}")
    return found.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("browser-server")) as running:
        yield running


@pytest.fixture
def capture_file(tmp_path: Path) -> Path:
    """The speech clip at 48 kHz with a long silence after it (the fake mic plays it once)."""
    speech, _ = read_wav(SPEECH, sample_rate=CAPTURE_RATE)
    lead = np.zeros(int(0.5 * CAPTURE_RATE), dtype=np.float32)
    tail = np.zeros(int(TRAILING_SILENCE_S * CAPTURE_RATE), dtype=np.float32)
    path = tmp_path / "speech-48k.wav"
    write_wav(path, np.concatenate([lead, speech, tail]), CAPTURE_RATE)
    return path


async def _stats(page: Page) -> dict[str, Any]:
    raw = await page.evaluate("JSON.stringify(window.vocalisStats || null)")
    return json.loads(raw) if raw else {}


async def _wait_for_reply_played(page: Page) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = await _stats(page)
        if stats.get("agentTranscripts") and stats.get("chunksEnded", 0) > 10:
            return stats
        if stats.get("state") == "error":
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"no played reply; page stats: {stats}; console: {page.console[-20:]}")


@pytest.mark.parametrize("query", ["", "?device-rate"], ids=["context-at-24k", "worklet-resamples"])
async def test_page_talks_through_a_real_browser(
    chromium: str, server: LiveServer, capture_file: Path, tmp_path: Path, query: str
) -> None:
    flags = (f"--use-file-for-fake-audio-capture={capture_file}%noloop",)
    async with chromium_page(chromium, tmp_path / "profile", flags) as page:
        await page.send("Page.navigate", url=server.http_url + "/" + query)
        for _ in range(100):
            if await page.evaluate("document.readyState") == "complete":
                break
            await asyncio.sleep(0.05)
        await page.send("Emulation.setDeviceMetricsOverride", width=900, height=700,
                        deviceScaleFactor=1, mobile=False)  # fmt: skip
        await page.evaluate("document.getElementById('start').click()")
        stats = await _wait_for_reply_played(page)
        user_text = await page.evaluate(
            "[...document.querySelectorAll('.msg.user')].map(e => e.textContent).join('|')"
        )
        agent_text = await page.evaluate(
            "[...document.querySelectorAll('.msg.agent')].map(e => e.textContent).join('|')"
        )
        if not query:
            await page.screenshot(SCREENSHOT)
            print(f"\nscreenshot: {SCREENSHOT}")
    print(f"page stats: { {k: v for k, v in stats.items() if not isinstance(v, list)} }")
    print(f"turn latency (speech stopped -> first audio), ms: {stats['latenciesMs']}")

    # the fake recogniser calls an utterance "speech <N> ms"; the fake LLM echoes it back
    assert stats["userTranscripts"], stats
    heard = stats["userTranscripts"][0]
    assert heard.startswith("speech ")
    assert heard in user_text
    assert f"You said: {heard}" in agent_text
    assert stats["agentTranscripts"][0] == f"You said: {heard}"
    assert stats["chunksSent"] > 10  # the worklet captured and sent microphone audio
    assert stats["chunksReceived"] >= stats["chunksPlayed"] > 10
    assert stats["latenciesMs"] and stats["latenciesMs"][0] >= 0
    if query:
        assert stats["contextRate"] != 24_000  # the worklet did the resampling
    else:
        assert stats["contextRate"] == 24_000
        assert SCREENSHOT.stat().st_size > 1000


async def test_page_types_to_the_agent_and_reads_written_replies(
    chromium: str, server: LiveServer, tmp_path: Path
) -> None:
    """A text session (§6.8) from the page's text box: no microphone, written replies."""
    async with chromium_page(chromium, tmp_path / "profile", ()) as page:
        await page.send("Page.navigate", url=server.http_url + "/")
        for _ in range(100):
            if await page.evaluate("document.readyState") == "complete":
                break
            await asyncio.sleep(0.05)
        await page.evaluate("document.getElementById('text-replies').checked = true")
        await page.evaluate("document.getElementById('start-text').click()")
        for _ in range(200):
            if not await page.evaluate("document.getElementById('compose').hidden"):
                break
            await asyncio.sleep(0.05)
        await page.evaluate("document.getElementById('message').value = 'hello from the page'")
        await page.evaluate("document.getElementById('compose').requestSubmit()")
        deadline = time.monotonic() + WAIT_SECONDS
        stats = await _stats(page)
        while not stats.get("agentTranscripts") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            stats = await _stats(page)
        agent_text = await page.evaluate(
            "[...document.querySelectorAll('.msg.agent')].map(e => e.textContent).join('|')"
        )
    assert stats["typed"] == ["hello from the page"]
    assert stats["agentTranscripts"] == ["You said: hello from the page"], stats
    assert "You said: hello from the page" in agent_text
    assert stats["chunksSent"] == 0 and stats["chunksReceived"] == 0  # no audio either way

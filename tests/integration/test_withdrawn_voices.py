"""§18.1: the voices withdrawn from the hosted catalog in June 2026 are still accepted.

Clients written before the withdrawal send these ids; a session with any of them must start and
echo it, and ``GET /v1/voices`` must list them.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import WsServer
from vocalis.server.rest.standalone import build_app
from vocalis.settings import Settings

WITHDRAWN = [
    "sam",
    "mia",
    "jack",
    "sophie",
    "oliver",
    "ethan",
    "mei",
    "lukas",
    "lena",
    "mina",
    "joon",
    "ren",
    "hana",
]


@pytest.mark.parametrize("voice", WITHDRAWN)
def test_withdrawn_voice_is_accepted_and_echoed(ws_server: WsServer, voice: str) -> None:
    with ws_server.connect() as ws:
        ready = ws.start({"output": {"voice": voice}})
        assert ready["config"]["output"]["voice"] == voice
        ws.assert_alive()


async def test_voices_route_lists_the_withdrawn_group(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = (await client.get("/v1/voices")).json()
    listed = {v["voice_id"]: v for v in body["voices"]}
    for voice in WITHDRAWN:
        assert listed[voice] == {
            "voice_id": voice,
            "name": voice.capitalize(),
            "language": "en",
            "description": "English",
            "default": False,
        }
    assert len(listed) == len(body["voices"])  # no id listed twice

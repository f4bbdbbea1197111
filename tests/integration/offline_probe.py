"""Run inside a network namespace with no route out: start the embedded server and hold a turn.

Used by test_offline.py; prints ``OFFLINE-OK <reply text>`` on success.
"""

from __future__ import annotations

import asyncio
import json
import socket

import websockets

from vocalis.server.background import background_server


def assert_offline() -> None:
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("1.1.1.1", 443)) != 0, "this namespace can reach the internet"


async def converse(url: str) -> str:
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {}}))
        message = {"type": "conversation.message", "role": "user", "content": "Say hello."}
        await ws.send(json.dumps(message))
        await ws.send(json.dumps({"type": "reply.create"}))
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "transcript.agent":
                return str(event["text"])
    return ""


def main() -> None:
    assert_offline()
    with background_server(providers="embedded") as (url, _):
        text = asyncio.run(asyncio.wait_for(converse(url), 120))
    print("OFFLINE-OK", text, flush=True)


if __name__ == "__main__":
    main()

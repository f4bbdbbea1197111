"""Barge-in stop latency: user speech onset → last agent audio chunk sent, through /v1/ws.

Each trial starts a session whose greeting is long, waits until the agent has spoken for 1.5 s,
then streams a real speech clip; the latency is from the instant the clip's first speech sample
was sent to the arrival of the greeting's last ``reply.audio`` chunk.

    .venv/bin/python bench/bench_bargein.py [--providers embedded|fake] [--trials N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from bench.common import (
    RATE,
    TEST_DATA,
    PacedStreamer,
    connect,
    load_24k,
    percentile,
    running_server,
    speech_bounds,
)

GREETING = (
    "Thanks for calling. Our opening hours are nine to five on weekdays and ten to four on "
    "Saturdays, and you can reach us by email at any time of day or night."
)


async def trial(url: str, clip: np.ndarray) -> float | None:
    onset, _ = speech_bounds(clip)
    ws = await connect(url)
    await ws.send(json.dumps({"type": "session.update", "session": {"greeting": GREETING}}))
    streamer = PacedStreamer(ws)
    state: dict[str, Any] = {"last_audio": None, "first_audio": None, "done": None}

    async def receive() -> None:
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "reply.audio":
                now = time.perf_counter()
                state["first_audio"] = state["first_audio"] or now
                state["last_audio"] = now
            elif msg["type"] == "reply.done":
                state["done"] = msg["status"]
                return

    receiver = asyncio.create_task(receive())
    while state["first_audio"] is None or time.perf_counter() - state["first_audio"] < 1.5:
        await streamer.send(np.zeros(RATE // 50, np.float32))
    start_sample = streamer.sent_samples
    await streamer.send(clip)
    onset_wall = streamer.wall_of_sample(start_sample + int(onset * RATE))
    for _ in range(50):
        if receiver.done():
            break
        await streamer.send(np.zeros(RATE // 10, np.float32))
    receiver.cancel()
    # end the session: a detached one would count against max_sessions for its grace window
    await ws.send(json.dumps({"type": "session.end"}))
    await ws.close()
    if state["done"] != "interrupted" or state["last_audio"] is None:
        return None
    return float(state["last_audio"] - onset_wall)


async def run(url: str, trials: int) -> None:
    clip = load_24k(TEST_DATA / "tts_wait_actually.wav")
    results = []
    for i in range(trials):
        latency = await trial(url, clip)
        print(f"trial {i + 1:2}: " + (f"{latency:.3f} s" if latency is not None else "no barge-in"))
        if latency is not None:
            results.append(latency)
    print()
    print(f"barge-ins: {len(results)}/{trials}")
    print(
        f"stop latency P50: {percentile(results, 50):.3f} s   P95: {percentile(results, 95):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(f"providers: {args.providers}")
    with running_server(providers=args.providers) as (url, _):
        asyncio.run(run(url, args.trials))


if __name__ == "__main__":
    main()

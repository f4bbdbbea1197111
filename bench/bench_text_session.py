"""What a text-input session costs (§6.8): server CPU while a client streams audio anyway.

Three sessions, one after the other, each for ``--seconds`` on the same in-process server with
the embedded models: an idle socket (a session, nothing sent), a text-input session receiving
real-time microphone-like noise (dropped unheard: no VAD, no STT), and an audio session
receiving the same noise (VAD runs on every frame; the noise is quiet, so no turn opens). The
figure is the server's CPU time over wall time: the process's, less the client's thread (the
client runs in this process's main thread, the server in others).

    .venv/bin/python -m bench.bench_text_session [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import numpy as np

from bench.common import RATE, PacedStreamer, connect, running_server

SETTLE_SECONDS = 3.0


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds() -> float:
    """The process's CPU time less this (the client's) thread's: the server's own work."""
    return cpu_seconds() - cpu_seconds(resource.RUSAGE_THREAD)


async def one(url: str, session: dict[str, Any] | None, seconds: float, stream: bool) -> float:
    """CPU share (in % of one core) of the whole process while one session runs."""
    ws = await connect(url)
    if session is not None:
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        while json.loads(await ws.recv())["type"] != "session.ready":
            pass
    await asyncio.sleep(SETTLE_SECONDS)  # the session's start-up work (LLM prompt cache) is done
    noise = (np.random.default_rng(7).standard_normal(int(seconds * RATE)) * 0.002).astype(
        np.float32
    )
    started, cpu = time.perf_counter(), server_cpu_seconds()
    if stream:
        await PacedStreamer(ws).send(noise)
    else:
        await asyncio.sleep(seconds)
    share = 100 * (server_cpu_seconds() - cpu) / (time.perf_counter() - started)
    await ws.close()
    return share


async def run(url: str, seconds: float) -> None:
    rows = [
        ("idle socket (session, nothing sent)", {}, False),
        ("text input, client streams audio", {"input": {"type": "text"}}, True),
        ("audio input, client streams audio", {}, True),
    ]
    print(f"{'session':40} {'server CPU % of one core':>25}")
    for name, session, stream in rows:
        share = await one(url, session, seconds, stream)
        print(f"{name:40} {share:25.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    args = parser.parse_args()
    print(f"providers: {args.providers}; {args.seconds:.0f} s per session; client in-process")
    with running_server(providers=args.providers) as (url, _state):
        asyncio.run(run(url, args.seconds))


if __name__ == "__main__":
    main()

"""What an idle, listening session costs: N callers streaming digital silence in real time.

The server runs the embedded VAD, turn model and STT (the LLM is left out: see ``main``) in its
own process (``bench.server_proc``); its CPU seconds over a measuring
window are divided by the seconds of audio it accepted in that window (its own
``vocalis_input_audio_seconds`` counter), which gives core-seconds per second of listening, i.e.
the fraction of one core one streaming session costs, whatever the callers' process managed to
send. Memory per session is the server's RSS growth divided by N.

    python -m bench.bench_idle [--sessions 0,50,100,200] [--seconds 10] [--chunk-ms 20]
        [--pythonpath OTHER_TREE/src]   # measure another checkout's server (before/after)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import b64, connect, pyplot, save_figure
from bench.report import RESULTS, save_section
from bench.server_proc import ServerProcess, server_process

RATE = 24_000


async def _open(url: str) -> Any:
    ws = await connect(url)
    await ws.send(json.dumps({"type": "session.update", "session": {}}))
    while json.loads(await ws.recv())["type"] != "session.ready":
        pass
    return ws


async def measure(server: ServerProcess, n: int, seconds: float, chunk_ms: int) -> dict[str, Any]:
    sockets = []
    for start in range(0, n, 25):  # open in groups: a burst of 200 handshakes is not the point
        sockets += await asyncio.gather(*(_open(server.url) for _ in range(min(25, n - start))))
    message = json.dumps(
        {"type": "input.audio", "audio": b64(np.zeros(RATE * chunk_ms // 1000, np.float32))}
    )
    stop = asyncio.Event()

    async def stream() -> None:
        t0 = time.perf_counter()
        tick = 0
        while not stop.is_set():
            for ws in sockets:
                await ws.send(message)
            tick += 1
            delay = t0 + tick * chunk_ms / 1000 - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))

    streamer = asyncio.create_task(stream())
    await asyncio.sleep(3.0)  # warm-up: sessions settle into listening
    cpu0, audio0, t0 = server.cpu_seconds(), _audio(server), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, audio1, t1 = server.cpu_seconds(), _audio(server), time.perf_counter()
    rss, threads = server.rss_mb(), server.threads()
    stop.set()
    await streamer
    for ws in sockets:
        await ws.close()
    wall = t1 - t0
    audio = audio1 - audio0
    return {
        "sessions": n,
        "cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "audio_seconds": audio,
        "realtime_fraction": audio / (wall * n) if n else 0.0,
        "cpu_seconds": cpu1 - cpu0,
        "rss_mb": rss,
        "threads": threads,
    }


def _audio(server: ServerProcess) -> float:
    return server.metric("vocalis_input_audio_seconds_total")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    base = rows[0]
    out: dict[str, Any] = {"rows": rows}
    top = rows[-1]
    if top["sessions"] and top["audio_seconds"] > 0:
        marginal = (top["cpu_seconds"] - base["cpu_seconds"] * (top["audio_seconds"] and 1)) / top[
            "audio_seconds"
        ]
        out["core_fraction_per_session"] = marginal
        out["sessions_per_core"] = 1 / marginal if marginal > 0 else float("inf")
        out["rss_mb_per_session"] = (top["rss_mb"] - base["rss_mb"]) / top["sessions"]
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["sessions"] for r in rows], [r["cpu_percent"] for r in rows], "o-")
    ax.set_xlabel("idle sessions streaming silence in real time")
    ax.set_ylabel("server CPU (% of one core)")
    ax.set_title("Cost of listening (embedded VAD)")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    parser.add_argument("--sessions", default="0,50,100,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk-ms", type=int, default=20)
    parser.add_argument("--pythonpath", default=None, help="src/ of another checkout to measure")
    parser.add_argument("--label", default="idle", help="name of the saved section")
    args = parser.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    env = {"VOCALIS_MAX_SESSIONS": "0", "VOCALIS_ADMISSION_MAX_LAG_SECONDS": "0"}
    # Listening only: the LLM is pointed at an address nobody serves (an idle session never
    # asks it), so opening a session does not prefill the embedded model's cache, a start-up
    # cost that would otherwise run into the measuring window.
    env.update(VOCALIS_LLM_BASE_URL="http://127.0.0.1:9/v1", VOCALIS_LLM_MODEL="unused")
    rows = []
    with server_process(args.providers, env=env, pythonpath=args.pythonpath) as server:
        for n in counts:
            row = asyncio.run(measure(server, n, args.seconds, args.chunk_ms))
            rows.append(row)
            print(
                f"{n:4d} sessions: server CPU {row['cpu_percent']:6.1f} %  "
                f"(audio {row['realtime_fraction']:.2f}× real time)  RSS {row['rss_mb']:.0f} MB  "
                f"threads {row['threads']}",
                flush=True,
            )
    summary = summarise(rows)
    if "sessions_per_core" in summary:
        print(
            f"per session: {100 * summary['core_fraction_per_session']:.2f} % of a core "
            f"→ {summary['sessions_per_core']:.0f} idle streaming sessions per core; "
            f"{summary['rss_mb_per_session']:.2f} MB each"
        )
    summary.update(providers=args.providers, chunk_ms=args.chunk_ms, seconds=args.seconds)
    summary["command"] = "python -m bench.bench_idle " + " ".join(sys.argv[1:])
    plot(rows, RESULTS / f"{args.label}.png")
    save_section(args.label, summary)


if __name__ == "__main__":
    main()

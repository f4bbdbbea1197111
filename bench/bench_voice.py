"""Voice-to-voice latency and WER over real speech, through /v1/ws with the chosen providers.

For each clip: stream it in real time (20 ms chunks, then silence), and measure
end of user speech (the instant the clip's last speech sample was sent) → first ``reply.audio``
of the reply at the client. Also prints WER of ``transcript.user`` against the reference and the
server's per-stage timings from the session timeline.

    .venv/bin/python bench/bench_voice.py [--providers embedded|fake] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    RATE,
    PacedStreamer,
    connect,
    load_24k,
    manifest,
    percentile,
    running_server,
    speech_bounds,
    speech_dir,
    speech_dir_note,
    word_errors,
)


async def one_clip(url: str, state: Any, path: Path, session: dict[str, Any]) -> dict[str, Any]:
    audio = load_24k(path)
    _, end = speech_bounds(audio)
    ws = await connect(url)
    await ws.send(json.dumps({"type": "session.update", "session": session}))
    session_id = None
    while session_id is None:
        msg = json.loads(await ws.recv())
        if msg["type"] == "session.ready":
            session_id = msg["session_id"]
    streamer = PacedStreamer(ws)
    lead = np.zeros(int(0.3 * RATE), np.float32)
    result: dict[str, Any] = {"clip": path.name}

    async def receive() -> None:
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "transcript.user":
                result["text"] = msg["text"]
            elif msg["type"] == "reply.audio" and "first_audio" not in result:
                result["first_audio"] = time.perf_counter()
            elif msg["type"] == "reply.done":
                return

    receiver = asyncio.create_task(receive())
    await streamer.send(np.concatenate([lead, audio]))
    speech_end_wall = streamer.wall_of_sample(len(lead) + int(end * RATE))
    while not receiver.done():
        await streamer.send(np.zeros(RATE // 10, np.float32))
        if time.perf_counter() - speech_end_wall > 20:
            receiver.cancel()
            break
    if "first_audio" in result:
        result["v2v"] = result["first_audio"] - speech_end_wall
    session = state.manager.get(session_id)
    if session is not None:
        turns = [t for t in session.timeline()["turns"] if t.get("timings")]
        if turns:
            result["timings"] = turns[0]["timings"]
    await ws.send(json.dumps({"type": "session.end"}))
    await ws.close()
    return result


async def run(
    url: str, state: Any, clips: list[Path], refs: dict[str, str], session: dict[str, Any]
) -> None:
    rows = []
    errors = words = 0
    print(f"{'clip':52} {'v2v s':>6}  transcript")
    for path in clips:
        r = await one_clip(url, state, path, session)
        rows.append(r)
        e, n = word_errors(refs.get(path.name, ""), r.get("text", ""))
        errors, words = errors + e, words + n
        v2v = f"{r['v2v']:.3f}" if "v2v" in r else "  -  "
        print(f"{path.name[:52]:52} {v2v:>6}  {r.get('text', '')[:60]}")
    v2v_all = [r["v2v"] for r in rows if "v2v" in r]
    print()
    print(f"clips: {len(rows)}   replies: {len(v2v_all)}")
    print(f"WER: {100 * errors / max(1, words):.1f} % ({errors}/{words} words)")
    p50, p95 = percentile(v2v_all, 50), percentile(v2v_all, 95)
    print(f"voice-to-voice P50: {p50:.3f} s   P95: {p95:.3f} s")
    stages = [
        "stt_final_ms",
        "turn_decision_ms",
        "llm_first_token_ms",
        "tts_first_audio_ms",
        "first_audio_sent_ms",
    ]
    print("median per-stage offsets from end of user speech (server side):")
    for stage in stages:
        values = [r["timings"][stage] for r in rows if r.get("timings", {}).get(stage) is not None]
        if values:
            med, p95 = statistics.median(values), percentile(values, 95)
            print(f"  {stage:22} {med:7.0f} ms  (P95 {p95:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument(
        "--mode",
        default=None,
        choices=["min_latency", "balanced", "max_accuracy"],
        help="input.transcription_mode of the sessions (default: the server's, balanced)",
    )
    args = parser.parse_args()
    folder = speech_dir()
    refs = manifest(folder)
    clips = sorted(folder.glob("asr_*.wav"))
    if args.limit:
        clips = clips[: args.limit]
    session: dict[str, Any] = {}
    if args.mode:
        session["input"] = {"transcription_mode": args.mode}
    print(f"providers: {args.providers}; mode: {args.mode or 'balanced'}")
    print(speech_dir_note(folder))
    with running_server(providers=args.providers) as (url, state):
        asyncio.run(run(url, state, clips, refs, session))


if __name__ == "__main__":
    main()

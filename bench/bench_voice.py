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
    is_fragment,
    load_24k,
    manifest,
    percentile,
    pyplot,
    running_server,
    save_figure,
    speech_bounds,
    speech_dir,
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
    live = state.manager.get(session_id)  # the server's session (``session``: its config)
    if live is not None:
        turns = [t for t in live.timeline()["turns"] if t.get("timings")]
        if turns:
            result["timings"] = turns[0]["timings"]
    await ws.send(json.dumps({"type": "session.end"}))
    await ws.close()
    return result


async def run(
    url: str, state: Any, clips: list[Path], refs: dict[str, str], session: dict[str, Any]
) -> list[dict[str, Any]]:
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
    whole = [r["v2v"] for r in rows if "v2v" in r and not is_fragment(refs.get(r["clip"], ""))]
    if len(whole) < len(v2v_all):  # clips that stop mid-sentence wait for max_silence by design
        print(
            f"  over the {len(whole)} clips that end a sentence: P50 {percentile(whole, 50):.3f} s"
            f"   P95: {percentile(whole, 95):.3f} s"
        )
    print("median per-stage offsets from end of user speech (server side):")
    for stage in STAGES:
        values = stage_values(rows, stage)
        if values:
            med, p95 = statistics.median(values), percentile(values, 95)
            print(f"  {stage:22} {med:7.0f} ms  (P95 {p95:.0f})")
    commit = stage_values(rows, "commit_to_audio_ms")
    if commit:
        print(
            f"commit -> first audio sent (server): P50 {percentile(commit, 50):.0f} ms   "
            f"P95 {percentile(commit, 95):.0f} ms"
        )
    return rows


STAGES = [
    "stt_final_ms",
    "turn_decision_ms",
    "llm_first_token_ms",
    "first_piece_ms",
    "tts_first_audio_ms",
    "first_audio_sent_ms",
]


def stage_values(rows: list[dict[str, Any]], stage: str) -> list[float]:
    """One stage's offsets over the clips; ``commit_to_audio_ms`` is derived: first audio sent
    minus the turn decision, i.e. how ready the reply was when the turn ended."""
    out = []
    for r in rows:
        t = r.get("timings", {})
        if stage == "commit_to_audio_ms":
            if t.get("first_audio_sent_ms") is not None and t.get("turn_decision_ms") is not None:
                out.append(float(t["first_audio_sent_ms"] - t["turn_decision_ms"]))
        elif t.get(stage) is not None:
            out.append(float(t[stage]))
    return out


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Voice-to-voice distribution and median stage offsets, per mode."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, rows in results.items():
        v2v = sorted(r["v2v"] for r in rows if "v2v" in r)
        if v2v:
            left.plot(v2v, np.linspace(0, 100, len(v2v)), marker=".", label=mode)
    left.set(title="end of speech -> first reply audio", xlabel="s", ylabel="% of clips")
    left.legend()
    x = np.arange(len(STAGES))
    for j, (mode, rows) in enumerate(results.items()):
        meds = [statistics.median(stage_values(rows, s) or [float("nan")]) for s in STAGES]
        right.bar(x + 0.4 * j - 0.2, meds, 0.4, label=mode)
    right.set_xticks(x, [s.removesuffix("_ms") for s in STAGES], rotation=15, fontsize=8)
    right.set(title="median offset from end of speech (server)", ylabel="ms")
    right.legend()
    save_figure(fig, path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument(
        "--mode",
        default=None,
        choices=["min_latency", "balanced", "max_accuracy", "both"],
        help="input.transcription_mode of the sessions (default: the server's, balanced; "
        "both: balanced, then min_latency)",
    )
    args = parser.parse_args()
    folder = speech_dir()
    refs = manifest(folder)
    clips = sorted(folder.glob("asr_*.wav"))
    if args.limit:
        clips = clips[: args.limit]
    modes = ["balanced", "min_latency"] if args.mode == "both" else [args.mode or "balanced"]
    results: dict[str, list[dict[str, Any]]] = {}
    with running_server(providers=args.providers) as (url, state):
        for mode in modes:
            session: dict[str, Any] = {"input": {"transcription_mode": mode}}
            print(f"\nproviders: {args.providers}; mode: {mode}; clips from {folder}")
            results[mode] = asyncio.run(run(url, state, clips, refs, session))
    plot(results, RESULTS / "voice.png")


RESULTS = Path(__file__).resolve().parent / "results"


if __name__ == "__main__":
    main()

"""Load and soak suite: simulated callers holding real conversations with one server process.

Each caller opens a session, then for each turn speaks a real recording (../shared/speech, else
tests/data) in real time, 20 ms chunks, streaming silence in between like a live microphone;
waits for the reply, listens to it to the end, pauses, and speaks the next one. Callers start
staggered. For each number of callers N the suite reports voice-to-voice P50/P95 (end of the
clip's speech → first ``reply.audio``), the turn decision (→ ``input.speech.stopped``) and
first-audio offsets, the server's CPU (its own process, /proc), its RSS and memory per session,
and how many callers were refused (``at_capacity``) and how fast. A final burst row opens
``--burst`` callers at once, to show the node's answer to more callers than it can serve.

    python -m bench.bench_load                      # embedded sweep, writes bench/RESULTS.md
    python -m bench.bench_load --soak               # 20 sessions × 10 min: RSS, threads, tasks
    python -m bench.bench_load --quick              # fake providers, seconds (CI runs this)

Figures, not assertions: latency on a shared machine moves with its neighbours' load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

from bench.common import (
    RATE,
    b64,
    connect,
    load_24k,
    percentile,
    pyplot,
    save_figure,
    speech_bounds,
    speech_dir,
)
from bench.report import RESULTS, save_section, soak_growth_detail
from bench.server_proc import ServerProcess, server_process

CHUNK_MS = 20
#: A turn with no reply audio this long after its speech ended counts as unanswered.
REPLY_TIMEOUT = 25.0
#: Once the reply is heard, the caller listens to its end, however long (the model's spoken
#: cap is 160 tokens, ~40 s of speech). A single 25 s limit for the whole reply made a caller
#: speak over a long reply, and that reply's end was then taken for the next turn's answer:
#: the next turn went on at once and the last one ended the session unanswered (3 of ~20
#: rows of 4 callers at once; the event trails printed below showed it).
LONGEST_REPLY_S = 120.0
#: A turn whose decision came this soon after the end of speech was committed at
#: ``min_silence`` (800 ms in the default ``balanced`` mode, plus the VAD's ~0.12 s lag); one
#: the turn rule held as unsure waits at least 1.3 s (``Policy.unsure_floor_ms``). Each row also
#: gives its P95 over these turns alone: what the load costs, apart from what the rule waits.
PROMPT_DECISION_S = 1.2


@dataclass
class Turn:
    speech_end: float
    stopped: float | None = None
    first_audio: float | None = None
    done: float | None = None
    heard: asyncio.Event = field(default_factory=asyncio.Event)  # first reply audio came
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # that reply is done
    #: Server events seen during the turn (type, when: ``perf_counter``; audio
    #: and transcript deltas left out), printed for a turn never answered or answered by
    #: more than one reply, so the row says what happened.
    events: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Caller:
    admitted: bool = False
    refused: bool = False
    refusal_seconds: float | None = None
    error: str | None = None
    session_id: str | None = None
    turns: list[Turn] = field(default_factory=list)


class Mic:
    """A live microphone: real-time 20 ms chunks, silence unless a clip is being spoken."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._queue: list[np.ndarray] = []
        self._silence = json.dumps(
            {"type": "input.audio", "audio": b64(np.zeros(RATE * CHUNK_MS // 1000, np.float32))}
        )
        self.clip_done: asyncio.Future[float] | None = None
        self._speech_end_sample = 0

    def speak(self, audio: np.ndarray) -> asyncio.Future[float]:
        """Queue a clip; the future gets the wall time its speech ended."""
        _, end = speech_bounds(audio)
        self._speech_end_sample = int(end * RATE)
        step = RATE * CHUNK_MS // 1000
        self._queue = [audio[i : i + step] for i in range(0, len(audio), step)]
        self.clip_done = asyncio.get_running_loop().create_future()
        return self.clip_done

    async def run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._run()

    async def _run(self) -> None:
        t0 = time.perf_counter()
        tick = 0
        sent_in_clip = 0
        while True:
            if self._queue:
                chunk = self._queue.pop(0)
                await self.ws.send(json.dumps({"type": "input.audio", "audio": b64(chunk)}))
                before = sent_in_clip
                sent_in_clip += len(chunk)
                if before <= self._speech_end_sample < sent_in_clip and self.clip_done:
                    self.clip_done.set_result(time.perf_counter())
            else:
                sent_in_clip = 0
                await self.ws.send(self._silence)
            tick += 1
            await asyncio.sleep(max(0.0, t0 + tick * CHUNK_MS / 1000 - time.perf_counter()))


async def caller(url: str, clips: list[np.ndarray], index: int, turns: int, delay: float) -> Caller:
    await asyncio.sleep(delay)
    result = Caller()
    ws = await connect(url)
    opened = time.perf_counter()
    await ws.send(json.dumps({"type": "session.update", "session": {}}))
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == "session.ready":
            result.admitted = True
            result.session_id = event["session_id"]
            break
        if event["type"] == "session.error":
            result.refused = event["code"] == "at_capacity"
            result.error = event["code"]
            result.refusal_seconds = time.perf_counter() - opened
            await ws.close()
            return result
    mic = Mic(ws)
    current: list[Turn] = []

    async def listen() -> None:
        try:
            await _listen()
        except websockets.ConnectionClosed as closed:
            result.error = f"closed {closed.rcvd.code if closed.rcvd else '?'}"

    async def _listen() -> None:
        async for raw in ws:
            event = json.loads(raw)
            kind, now = event["type"], time.perf_counter()
            turn = current[-1] if current else None
            if turn is None:
                continue
            if kind not in ("reply.audio", "transcript.agent.delta", "transcript.user.delta"):
                turn.events.append((kind, now))  # the speech may not have ended yet
            if kind == "input.speech.stopped" and turn.stopped is None:
                turn.stopped = now
            elif kind == "reply.audio" and turn.first_audio is None and now > turn.speech_end:
                turn.first_audio = now
                turn.heard.set()
            elif kind == "reply.done" and turn.first_audio is not None:
                turn.done = now
                turn.finished.set()
            elif kind == "session.ended":
                return

    async with asyncio.TaskGroup() as tg:
        mic_task = tg.create_task(mic.run())
        listener = tg.create_task(listen())
        for n in range(turns):
            clip = clips[(index + n) % len(clips)]
            if listener.done():
                break  # the server closed the session
            ended = mic.speak(clip)
            current.append(Turn(speech_end=float("inf")))
            try:
                current[-1].speech_end = await asyncio.wait_for(ended, len(clip) / RATE + 5)
            except TimeoutError:
                current.pop()  # the microphone stopped: the socket is gone
                break
            with contextlib.suppress(TimeoutError):  # unanswered: counted as such
                await asyncio.wait_for(current[-1].heard.wait(), REPLY_TIMEOUT)
                await asyncio.wait_for(current[-1].finished.wait(), LONGEST_REPLY_S)
            await asyncio.sleep(0.5)  # the caller thinks before speaking again
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps({"type": "session.end"}))
        try:
            await asyncio.wait_for(asyncio.shield(listener), 5)
        except TimeoutError:
            listener.cancel()
        mic_task.cancel()
    result.turns = current
    for n, turn in enumerate(current):
        replies = sum(kind == "reply.done" for kind, _ in turn.events)
        if turn.first_audio is None or replies != 1:
            trail = ", ".join(f"{kind} {at - turn.speech_end:+.2f}" for kind, at in turn.events)
            what = "never answered" if turn.first_audio is None else f"{replies} replies"
            print(f"caller {index} turn {n}: {what}; events: {trail}", flush=True)
    await ws.close()
    return result


def promptly_decided(callers: list[Caller]) -> list[float]:
    """Voice-to-voice of the answered turns decided within :data:`PROMPT_DECISION_S`."""
    return [
        t.first_audio - t.speech_end
        for c in callers
        for t in c.turns
        if t.first_audio is not None
        and t.stopped is not None
        and t.stopped - t.speech_end < PROMPT_DECISION_S
    ]


def _offsets(callers: list[Caller], attr: str) -> list[float]:
    out = []
    for c in callers:
        for t in c.turns:
            value = getattr(t, attr)
            if value is not None:
                out.append(value - t.speech_end)
    return out


async def run_n(
    server: ServerProcess, clips: list[np.ndarray], n: int, turns: int, stagger: float
) -> dict[str, Any]:
    rss0 = server.rss_mb()
    metrics0 = await asyncio.to_thread(server_metrics, server)
    stages0 = stage_totals(metrics0)
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    peak: list[float] = [rss0]
    lags: list[float] = [0.0]

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            peak.append(server.rss_mb())
            capacity = (await asyncio.to_thread(server.health)).get("capacity")
            if isinstance(capacity, dict):
                lags.append(float(capacity.get("lag_seconds") or 0.0))

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(
        *(caller(server.url, clips, i, turns, i * stagger) for i in range(n))
    )
    sampler.cancel()
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    metrics1 = await asyncio.to_thread(server_metrics, server)
    stages1 = stage_totals(metrics1)
    (seconds1, gaps1), (seconds0, gaps0) = audio_gaps(metrics1), audio_gaps(metrics0)
    gap_seconds, gaps = seconds1 - seconds0, gaps1 - gaps0
    stage_means = {
        stage: (stages1[stage][0] - stages0[stage][0])
        / max(1.0, stages1[stage][1] - stages0[stage][1])
        for stage in stages1
    }
    admitted = [c for c in results if c.admitted]
    timings, slowest, every = await asyncio.to_thread(turn_timings, server, admitted)
    waits = step_waits(every)
    v2v = _offsets(admitted, "first_audio")
    prompt = promptly_decided(admitted)
    refusals = [c.refusal_seconds for c in results if c.refusal_seconds is not None]
    return {
        "callers": n,
        "admitted": len(admitted),
        "refused": sum(1 for c in results if c.refused),
        "dropped": sum(1 for c in results if c.admitted and c.error),
        "turns": sum(len(c.turns) for c in admitted),
        "answered": len(v2v),
        "v2v_p50": percentile(v2v, 50),
        "v2v_p95": percentile(v2v, 95),
        "prompt_turns": len(prompt),
        "v2v_p95_prompt": percentile(prompt, 95),
        "decision_p50": percentile(_offsets(admitted, "stopped"), 50),
        "first_audio_p50": percentile(v2v, 50),
        "refusal_max": max(refusals, default=0.0),
        "cpu_percent": 100 * cpu / wall,
        "rss_mb": max(peak),
        "mb_per_session": (max(peak) - rss0) / max(1, len(admitted)),
        "max_lag": max(lags),
        "audio_gaps": int(gaps),
        "audio_gap_seconds": gap_seconds,
        "stage_means": stage_means,
        "offsets_p50": {
            name: percentile(values, 50) / 1000 for name, values in timings.items() if values
        },
        "v2v_all": v2v,
        "slowest_turn": slowest,
        "step_waits": {
            name: [percentile(values, 50), percentile(values, 95)]
            for name, values in waits.items()
            if values
        },
        "turn_timings": every,
    }


STAGES = ("stt", "stt_partial", "turn", "llm_first_token", "tts_first_audio")


TIMINGS = (
    "stt_final_ms",
    "llm_first_token_ms",
    "first_piece_ms",
    "tts_first_audio_ms",
    "first_audio_sent_ms",
)


#: Each step of a reply and the step it waits on: where a slow turn's time went. A reply
#: prepared during the pause starts on the final transcript; its audio goes out once the turn
#: is decided and the first piece is synthesised, whichever is later.
STEPS = (
    ("first token after final", "llm_first_token_ms", ("stt_final_ms",)),
    ("first piece after first token", "first_piece_ms", ("llm_first_token_ms",)),
    ("synthesis of the first piece", "tts_first_audio_ms", ("first_piece_ms",)),
    (
        "sent after decision and audio",
        "first_audio_sent_ms",
        ("turn_decision_ms", "tts_first_audio_ms"),
    ),
)


def step_waits(turns: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Milliseconds each step of :data:`STEPS` took after what it waits on, one per turn that
    has them all."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in STEPS}
    for timings in turns:
        for name, step, after in STEPS:
            values = [timings.get(key) for key in (step, *after)]
            if all(isinstance(v, int | float) for v in values):
                done, *before = (float(v) for v in values)  # type: ignore[arg-type]
                out[name].append(done - max(before))
    return out


def turn_timings(
    server: ServerProcess, callers: list[Caller]
) -> tuple[dict[str, list[float]], dict[str, Any], list[dict[str, Any]]]:
    """The server's own per-turn offsets from the end of speech (each session's timeline
    artifact, §17.4), so a slow row shows which stage the time went to; and the slowest turn
    (by first audio sent), which is what sets a row's P95."""
    out: dict[str, list[float]] = {name: [] for name in TIMINGS}
    slowest: dict[str, Any] = {}
    every: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.http, timeout=10) as http:
        for c in callers:
            timeline = None
            for _ in range(50):  # the record is written as the session ends
                record = http.get(f"/v1/sessions/{c.session_id}")
                urls = [
                    a["url"] for a in record.json().get("artifacts", []) if a["type"] == "timeline"
                ]
                if record.status_code == 200 and urls:
                    timeline = http.get(urls[0]).json()
                    break
                time.sleep(0.1)
            for turn in (timeline or {}).get("turns", []):
                timings = turn.get("timings") or {}
                every.append(timings)
                for name, value in timings.items():
                    if name in out and value is not None:
                        out[name].append(float(value))
                sent = timings.get("first_audio_sent_ms") or 0
                if sent > (slowest.get("timings") or {}).get("first_audio_sent_ms", -1):
                    slowest = {"timings": timings, "user": turn.get("user_transcript") or ""}
    return out, slowest, every


def server_metrics(server: ServerProcess) -> str:
    """The server's ``/metrics`` page (Prometheus text)."""
    return httpx.get(f"{server.http}/metrics", timeout=10).text


def stage_totals(text: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, calls) of each provider stage so far, from the server's histograms."""
    out = {}
    for stage in STAGES:
        values = []
        for part in ("sum", "count"):
            pattern = (
                rf'^vocalis_provider_latency_seconds_{part}\{{provider="[^"]+",'
                rf'stage="{stage}"\}} (\S+)$'
            )
            found = re.search(pattern, text, re.MULTILINE)
            values.append(float(found.group(1)) if found else 0.0)
        out[stage] = (values[0], values[1])
    return out


def audio_gaps(text: str) -> tuple[float, float]:
    """(seconds, times) replies' audio ran dry mid-reply so far, from the server's counters."""
    values = []
    for name in ("vocalis_output_audio_gap_seconds_total", "vocalis_output_audio_gaps_total"):
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values.append(float(found.group(1)) if found else 0.0)
    return values[0], values[1]


def _clips(limit: int) -> list[np.ndarray]:
    folder = speech_dir()
    paths = sorted(folder.glob("asr_*.wav"))[:limit]
    return [load_24k(p) for p in paths]


def plot_load(
    rows: list[dict[str, Any]], folder: Path, before: list[dict[str, Any]] | None = None
) -> None:
    """Latency and CPU against N; ``before`` (main's figures), when given, drawn in grey."""
    plt = pyplot()
    if not rows:
        saved = RESULTS / "load.json"
        rows = json.loads(saved.read_text())["rows"] if saved.exists() else []
    n = [r["callers"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(n, [r["v2v_p50"] for r in rows], "o-", label="voice-to-voice P50")
    ax.plot(n, [r["v2v_p95"] for r in rows], "s-", label="voice-to-voice P95")
    ax.plot(n, [r["decision_p50"] for r in rows], "^--", label="turn decision P50")
    if before:
        nb = [r["callers"] for r in before]
        ax.plot(nb, [r["v2v_p50"] for r in before], "o:", color="grey", label="before: P50")
        ax.plot(nb, [r["v2v_p95"] for r in before], "s:", color="silver", label="before: P95")
    ax.axhline(1.5, color="grey", lw=0.8, ls=":", label="P95 target 1.5 s")
    ax.set_xlabel("callers (admitted + refused)")
    ax.set_ylabel("seconds after the end of speech")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, folder / "load_latency.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, [r["cpu_percent"] for r in rows], "o-", label="this branch")
    if before:
        ax.plot(nb, [r["cpu_percent"] for r in before], "o:", color="grey", label="before (main)")
    ax.legend()
    ax.set_xlabel("callers")
    ax.set_ylabel("server CPU (% of one core; 200 = both)")
    ax.grid(alpha=0.3)
    save_figure(fig, folder / "load_cpu.png")


async def soak(
    server: ServerProcess, clips: list[np.ndarray], n: int, minutes: float
) -> dict[str, Any]:
    samples: list[tuple[float, float, int]] = []
    t0 = time.perf_counter()
    deadline = t0 + minutes * 60
    answered = 0
    threads_start = server.threads()

    async def one(i: int) -> None:
        nonlocal answered
        await asyncio.sleep(i * 0.5)
        while time.perf_counter() < deadline:
            c = await caller(server.url, clips, i, 3, 0.0)
            answered += sum(1 for t in c.turns if t.first_audio is not None)

    async def sample() -> None:
        while True:
            samples.append((time.perf_counter() - t0, server.rss_mb(), server.threads()))
            await asyncio.sleep(5.0)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(one(i) for i in range(n)))
    sampler.cancel()
    await asyncio.sleep(2.0)  # let the server finish ending the sessions
    warm = [s for s in samples if s[0] >= 0.2 * minutes * 60] or samples
    single_warm, single_end = warm[0][1], samples[-1][1]
    rss_warm, rss_end = window_median(samples, *WARM_WINDOW), window_median(samples, *END_WINDOW)
    return {
        "sessions": n,
        "minutes": minutes,
        "turns": answered,
        "rss_warm_mb": rss_warm,
        "rss_end_mb": rss_end,
        "rss_growth_percent": 100 * (rss_end - rss_warm) / rss_warm,
        "rss_single_warm_mb": single_warm,
        "rss_single_end_mb": single_end,
        "rss_single_growth_percent": 100 * (single_end - single_warm) / single_warm,
        "rss_second_half_percent": second_half_growth(samples),
        "threads_start": threads_start,
        "threads_end": samples[-1][2],
        "threads_after": server.threads(),
        "tasks_after": server.metric("vocalis_event_loop_tasks"),
        "samples": samples,
    }


#: Fractions of the soak between which RSS growth is read (see :func:`window_median`): after
#: warm-up, the run's middle (for the second half), and its last tenth, the last sample included.
WARM_WINDOW = (0.2, 0.3)
MID_WINDOW = (0.5, 0.6)
END_WINDOW = (0.9, 1.0)


def window_median(samples: list[tuple[float, float, int]], start: float, stop: float) -> float:
    """Median RSS of the samples taken from ``start`` up to ``stop`` (fractions of the run; a
    ``stop`` of 1 takes the last sample too).

    Growth is read between such windows (a minute of a 10-minute soak: 12 samples), not between
    two single samples: RSS swings by 40-100 MB from one 5-second sample to the next with what
    the sessions are doing at that second (the 11:34 UTC soak of 2026-12-02 alternated between
    ~1760 and ~1850 MB for its last 6 minutes), so two single samples measured which phase of
    the swing each one caught: +5.6 % where the windows say +3.4 % on the same samples."""
    end = samples[-1][0]
    inside = [rss for t, rss, _ in samples if start * end <= t and (t < stop * end or stop >= 1.0)]
    return statistics.median(inside) if inside else samples[-1][1]


def second_half_growth(samples: list[tuple[float, float, int]]) -> float:
    """RSS growth (%) over the run's second half: the median of the samples in its last tenth
    against those between 50 and 60 % of it (see :func:`window_median`). Caches that fill for
    minutes (llama.cpp's prompt cache) still count in the first half: a leak keeps climbing
    here."""
    if len(samples) < 10:
        return 0.0
    mid, last = window_median(samples, *MID_WINDOW), window_median(samples, *END_WINDOW)
    return 100 * (last - mid) / mid


def plot_soak(d: dict[str, Any], folder: Path) -> None:
    plt = pyplot()
    t = [s[0] / 60 for s in d["samples"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, [s[1] for s in d["samples"]], "-", label="RSS MB")
    end = t[-1]
    for (start, stop), level in ((WARM_WINDOW, d["rss_warm_mb"]), (END_WINDOW, d["rss_end_mb"])):
        ax.axvspan(start * end, stop * end, color="0.9")  # the windows growth is read between
        ax.hlines(level, start * end, stop * end, colors="k")
    ax.set_xlabel("minutes")
    ax.set_ylabel("server RSS (MB)")
    ax2 = ax.twinx()
    ax2.plot(t, [s[2] for s in d["samples"]], "r--", label="threads")
    ax2.set_ylabel("threads")
    ax.set_title(f"Soak: {d['sessions']} sessions")
    save_figure(fig, folder / "soak.png")


def pooled(folder: Path) -> dict[str, list[float]]:
    """Every answered turn's voice-to-voice of the runs saved in ``folder`` (``--results``),
    by variant: a label's part before its last ``_`` (``new_1``, ``new_2`` → ``new``). One
    row has 16 turns, too few for a P95 that tells two variants apart; alternated runs pooled
    do."""
    turns: dict[str, list[float]] = {}
    for variant, row in _saved_rows(folder):
        turns.setdefault(variant, []).extend(row.get("v2v_all", []))
    return turns


def pooled_steps(folder: Path) -> dict[str, dict[str, list[float]]]:
    """Each variant's :func:`step_waits` over every turn of its saved runs."""
    timings: dict[str, list[dict[str, Any]]] = {}
    for variant, row in _saved_rows(folder):
        timings.setdefault(variant, []).extend(row.get("turn_timings", []))
    return {variant: step_waits(turns) for variant, turns in timings.items()}


def pooled_load(folder: Path) -> dict[str, dict[str, list[float]]]:
    """Each variant's finals (ms after the end of speech, every turn) and, one per row, server
    CPU and how often and how long replies' audio ran dry."""
    out: dict[str, dict[str, list[float]]] = {}
    for variant, row in _saved_rows(folder):
        pool = out.setdefault(variant, {"final": [], "cpu": [], "dry": [], "dry_s": []})
        pool["final"] += [
            float(t["stt_final_ms"])
            for t in row.get("turn_timings", [])
            if t.get("stt_final_ms") is not None
        ]
        pool["cpu"].append(row["cpu_percent"])
        if "audio_gaps" in row:
            pool["dry"].append(row["audio_gaps"])
            pool["dry_s"].append(row["audio_gap_seconds"])
    return out


def _saved_rows(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(variant, row) of every run saved in ``folder``."""
    for path in sorted(folder.glob("*.json")):
        variant = path.stem.rsplit("_", 1)[0]
        for row in json.loads(path.read_text()).get("rows", []):
            yield variant, row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", default="embedded", choices=["embedded", "fake"])
    parser.add_argument("--callers", default="1,2,3,4,6", help="N values of the sweep")
    parser.add_argument("--burst", type=int, default=10, help="callers at once, last row")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--stagger", type=float, default=1.5, help="seconds between starts")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--max-sessions", default=None, help="VOCALIS_MAX_SESSIONS of the server")
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--soak-sessions", type=int, default=20)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="fake providers, seconds (CI)")
    parser.add_argument("--results", default=None, help="folder for figures (default bench/)")
    parser.add_argument("--pythonpath", default=None, help="src/ of another checkout to measure")
    parser.add_argument("--label", default="load", help="name of the saved section")
    parser.add_argument("--pool", default=None, help="print pooled figures of --results runs")
    args = parser.parse_args(argv)
    if args.pool:
        variants = pooled(Path(args.pool))
        steps = pooled_steps(Path(args.pool))
        load = pooled_load(Path(args.pool))
        for variant, v2v in variants.items():
            print(
                f"{variant}: {len(v2v)} turns; v2v P50 {percentile(v2v, 50):.2f} "
                f"P90 {percentile(v2v, 90):.2f} P95 {percentile(v2v, 95):.2f} s"
            )
            pool = load[variant]
            print(
                f"  final after the end of speech: P50 {percentile(pool['final'], 50):.0f} "
                f"P95 {percentile(pool['final'], 95):.0f} ms; server CPU, mean of "
                f"{len(pool['cpu'])} rows {statistics.mean(pool['cpu']):.1f} %"
            )
            if pool["dry"]:
                print(
                    f"  replies ran dry {statistics.mean(pool['dry']):.1f} times a row "
                    f"({statistics.mean(pool['dry_s']):.1f} s of silence; "
                    f"{len(pool['dry'])} rows)"
                )
            for step, waits in steps.get(variant, {}).items():
                if waits:
                    print(
                        f"  {step}: P50 {percentile(waits, 50):.0f} "
                        f"P95 {percentile(waits, 95):.0f} ms ({len(waits)} turns)"
                    )
        return {"pooled": variants}
    if args.quick:
        args.providers, args.callers, args.burst = "fake", "1,2", 4
        args.turns, args.stagger, args.clips = 2, 0.2, 3
        args.max_sessions = args.max_sessions or "2"
        # A smoke run of the suite: its fake-provider figures never replace the published ones.
        args.results = args.results or tempfile.mkdtemp(prefix="vocalis-bench-quick-")
    folder = Path(args.results) if args.results else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    env = {}
    if args.max_sessions is not None:
        env["VOCALIS_MAX_SESSIONS"] = str(args.max_sessions)
    if args.soak:
        env.setdefault("VOCALIS_MAX_SESSIONS", str(args.soak_sessions))
        env["VOCALIS_ADMISSION_MAX_LAG_SECONDS"] = "0"
    clips = _clips(args.clips)
    command = "python -m bench.bench_load " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"providers: {args.providers}; clips: {len(clips)} from {speech_dir()}", flush=True)
    with server_process(args.providers, env=env, pythonpath=args.pythonpath) as server:
        print(f"server capacity: {server.health().get('capacity')}", flush=True)
        if args.soak:
            d = asyncio.run(soak(server, clips, args.soak_sessions, args.soak_minutes))
            print(
                f"soak: RSS {d['rss_warm_mb']:.0f} → {d['rss_end_mb']:.0f} MB "
                f"({d['rss_growth_percent']:+.1f} %{soak_growth_detail(d)}), threads "
                f"{d['threads_start']} → "
                f"{d['threads_end']} → {d['threads_after']} after, tasks after "
                f"{d['tasks_after']:.0f}, turns answered {d['turns']}"
            )
            d["command"] = command
            if not args.results:
                name = "soak" if args.label == "load" else args.label
                if name == "soak":
                    plot_soak(d, folder)
                save_section(name, d)
            return d
        rows = []
        counts = [int(x) for x in args.callers.split(",")]
        for n in [*counts, args.burst]:
            stagger = 0.0 if n == args.burst else args.stagger
            row = asyncio.run(run_n(server, clips, n, args.turns, stagger))
            row["burst"] = n == args.burst
            rows.append(row)
            print(
                f"N={n:2d}{' (all at once)' if row['burst'] else ''}: admitted {row['admitted']} "
                f"refused {row['refused']} (max {row['refusal_max']:.2f} s); dropped "
                f"{row['dropped']}; answered "
                f"{row['answered']}/{row['turns']}; v2v P50 {row['v2v_p50']:.2f} P95 "
                f"{row['v2v_p95']:.2f} s (P95 {row['v2v_p95_prompt']:.2f} s over the "
                f"{row['prompt_turns']} decided within {PROMPT_DECISION_S} s); decision P50 "
                f"{row['decision_p50']:.2f} s; CPU "
                f"{row['cpu_percent']:.0f} %; RSS {row['rss_mb']:.0f} MB "
                f"(+{row['mb_per_session']:.1f} MB/session); worst worker lag "
                f"{row['max_lag']:.1f} s; replies ran dry {row['audio_gaps']} times "
                f"({row['audio_gap_seconds']:.1f} s of silence); mean stage s "
                + " ".join(f"{k}={v:.2f}" for k, v in row["stage_means"].items())
                + "; P50 offsets from end of speech s "
                + " ".join(
                    f"{k.removesuffix('_ms')}={v:.2f}" for k, v in row["offsets_p50"].items()
                )
                + "; slowest turn ms "
                + " ".join(
                    f"{k.removesuffix('_ms')}={v}"
                    for k, v in row["slowest_turn"].get("timings", {}).items()
                )
                + f" ({row['slowest_turn'].get('user', '')[:40]!r}); step waits ms P50/P95 "
                + "; ".join(
                    f"{name} {p50:.0f}/{p95:.0f}" for name, (p50, p95) in row["step_waits"].items()
                ),
                flush=True,
            )
    summary: dict[str, Any] = {
        "rows": rows,
        "providers": args.providers,
        "command": command,
        "note": (
            f"{args.turns} turns per caller, starts {args.stagger} s apart (the last row: "
            f"{args.burst} callers at once); server budget "
            f"{args.max_sessions or 'default (unset)'}."
        ),
    }
    if not args.results:
        save_section(args.label, summary)
    else:  # an A/B run keeps its rows (every turn's voice-to-voice) beside its plots
        (folder / f"{args.label}.json").write_text(json.dumps(summary, indent=1))
    before = RESULTS / "load_before.json"
    plot_load(
        rows if args.label == "load" else [],
        folder,
        json.loads(before.read_text())["rows"] if before.exists() and not args.quick else [],
    )
    return summary


if __name__ == "__main__":
    main()

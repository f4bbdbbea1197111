"""bench/RESULTS.md, rebuilt from the figures each load benchmark saves (bench/results/*.json).

Each benchmark saves its own section and calls :func:`write_results`, so a rerun of one of
them refreshes its part and keeps the others; the machine and its load at the time are
recorded with every section, since figures on a shared 2-core machine move with its neighbours.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem_gb = int(mem) / 1024 / 1024
    except OSError:
        mem_gb = 0.0
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average before the run "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min; the machine is shared)"
    )


def save_section(name: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    figures = {**figures, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC")}
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=1) + "\n")
    write_results()


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _idle(title: str, d: dict[str, Any], command: str) -> list[str]:
    lines = [f"## {title}", "", f"`{command}` — {d['when']}; {d['machine']}.", ""]
    lines += ["| sessions | server CPU (% of a core) | audio accepted (× real time) | RSS MB |"]
    lines += ["|---:|---:|---:|---:|"]
    for r in d["rows"]:
        lines.append(
            f"| {r['sessions']} | {r['cpu_percent']:.1f} | {r['realtime_fraction']:.2f} "
            f"| {r['rss_mb']:.0f} |"
        )
    if "sessions_per_core" in d:
        lines += [
            "",
            f"Per streaming session: **{100 * d['core_fraction_per_session']:.2f} % of a core → "
            f"{d['sessions_per_core']:.0f} idle sessions per core**; "
            f"**{d['rss_mb_per_session']:.2f} MB** of RSS each.",
        ]
    return [*lines, ""]


def prompt_p95_cell(row: dict[str, Any]) -> str:
    """The row's P95 over turns committed at min_silence (``bench_load.PROMPT_DECISION_S``),
    with how many there were; rows stored before it was measured have none."""
    if "v2v_p95_prompt" not in row:
        return "–"
    return f"{row['v2v_p95_prompt']:.2f} ({row['prompt_turns']} turns)"


def _load_table(d: dict[str, Any], command: str, title: str) -> list[str]:
    lines = [f"## {title}", ""]
    lines += [f"`{command}` — {d['when']}; {d['machine']}.", ""]
    lines += [d.get("note", ""), ""]
    lines += [
        "| callers | admitted | refused | dropped | turns answered / spoken "
        "| voice-to-voice (first audio) P50 / P95 s | P95 s of turns decided promptly "
        "| turn decision P50 s "
        "| worst worker lag s | refusal time max s | server CPU % | RSS MB | MB per session |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {r['callers']}{' at once' if r.get('burst') else ''} | {r['admitted']} | "
            f"{r['refused']} | {r.get('dropped', 0)} | "
            f"{r['answered']} / {r['turns']} | {r['v2v_p50']:.2f} / {r['v2v_p95']:.2f} | "
            f"{prompt_p95_cell(r)} | {r['decision_p50']:.2f} | "
            f"{r.get('max_lag', float('nan')):.1f} | "
            f"{r['refusal_max']:.2f} | "
            f"{r['cpu_percent']:.0f} | {r['rss_mb']:.0f} | {r['mb_per_session']:.1f} |"
        )
    stages = [r for r in d["rows"] if r.get("stage_means")]
    if stages:
        lines += [
            "",
            "Mean model time per call (server histograms; queueing in the worker included):",
            "",
        ]
        for r in stages:
            means = ", ".join(f"{k} {v:.2f} s" for k, v in r["stage_means"].items())
            lines.append(f"- {r['callers']} callers: {means}")
    offsets = [r for r in d["rows"] if r.get("offsets_p50")]
    if offsets:
        lines += [
            "",
            "Where a turn's time went (P50 offsets from the end of speech, seconds, from each "
            "session's timeline):",
            "",
        ]
        for r in offsets:
            parts = ", ".join(
                f"{k.removesuffix('_ms')} {v:.2f}" for k, v in r["offsets_p50"].items()
            )
            lines.append(f"- {r['callers']} callers: {parts}")
    return [*lines, ""]


def soak_growth_detail(d: dict[str, Any]) -> str:
    """How a soak's growth figure was read (windows, single samples, second half): the same
    words on the console and in RESULTS.md."""
    return _single_samples(d) + _second_half(d)


def _second_half(d: dict[str, Any]) -> str:
    growth = d.get("rss_second_half_percent")  # absent from soaks recorded before it existed
    return "" if growth is None else f"; over the run's second half {growth:+.1f} %"


def _single_samples(d: dict[str, Any]) -> str:
    growth = d.get("rss_single_growth_percent")  # absent from soaks recorded before it existed
    if growth is None:
        return "; single samples"
    return (
        f"; medians of 20-30 % and of the last tenth of the run; single samples "
        f"{d['rss_single_warm_mb']:.0f} → {d['rss_single_end_mb']:.0f} MB, {growth:+.1f} %"
    )


def _soak(d: dict[str, Any], command: str, title: str = "Soak") -> list[str]:
    lines = [f"## {title}", "", f"`{command}` — {d['when']}; {d['machine']}.", ""]
    lines += [
        f"{d['sessions']} sessions for {d['minutes']:.1f} min ({d['turns']} turns answered). "
        f"RSS after warm-up {d['rss_warm_mb']:.0f} MB → end {d['rss_end_mb']:.0f} MB "
        f"(**{d['rss_growth_percent']:+.1f} %**{soak_growth_detail(d)}); "
        f"threads {d['threads_start']} → "
        f"{d['threads_end']} (after the sessions closed: {d['threads_after']}); "
        f"asyncio tasks after the sessions closed: {d['tasks_after']}.",
        "",
    ]
    if title == "Soak":
        lines += ["![soak](results/soak.png)", ""]
    return lines


def write_results() -> None:
    parts = [
        "# Capacity figures (regenerated by the load suite; do not edit by hand)",
        "",
        "Run `make bench-load` (or the commands below). Server in its own process; simulated "
        "callers in the bench process on the same machine, so they share its cores. Latency on "
        "this shared machine moves with the neighbours' load; CPU seconds and memory do not.",
        "",
    ]
    for name, title in (
        ("idle_before", "Idle listening — before (main)"),
        ("idle", "Idle listening"),
    ):
        d = _load(name)
        if d:
            parts += _idle(title, d, d.get("command", "python -m bench.bench_idle"))
    for name, title in (
        ("load_before", "Conversations at once — before (main)"),
        ("load", "Conversations at once"),
    ):
        d = _load(name)
        if d:
            parts += _load_table(d, d.get("command", "python -m bench.bench_load"), title)
    if _load("load"):
        parts += ["![latency vs N](results/load_latency.png) ![CPU vs N](results/load_cpu.png)", ""]
    for name, title in (
        ("soak_before", "Soak — before (main)"),
        ("soak", "Soak"),
        ("soak_cache64", "Soak — llama.cpp prompt cache at 64 MiB instead of 256"),
    ):
        d = _load(name)
        if d:
            parts += _soak(d, d.get("command", "python -m bench.bench_load --soak"), title)
    RESULTS_MD.write_text("\n".join(parts).rstrip() + "\n")

"""llama.cpp's own speed for the installed build: prompt and generated tokens per second.

    .venv/bin/python -m bench.bench_llm_build [--runs 5] [--threads 1,2]

Counts tokens, not text deltas (``bench_models`` counts deltas): each figure is llama.cpp's
account of the request (``prompt_n`` / ``prompt_ms``, ``predicted_n`` / ``predicted_ms``), which
the embedded provider logs at DEBUG and this captures. Three measures per thread count, each the
median of ``--runs`` requests through :class:`~vocalis.providers.embedded.llm.QwenLLM`:

* **prompt**: a ~300-token prompt evaluated from scratch (a fresh nonce leads it, so no cached
  prefix is reused): the cost of a new conversation or an evicted history;
* **generation**: 150 tokens of a story (``--generate``);
* **turn tail**: a cached prompt whose last user words changed (what a reply evaluates after
  a warm-up of the partial transcript, ``session/prompt_warming.py``): the few tokens between
  the final transcript and the first token, where small batches cost more per token.

It prints which build is loaded (``.venv/.native-llm``, written by ``scripts/native-llm.sh``,
and the CPU features llama.cpp reports), so a prebuilt and a native venv can be compared by
running it in each. Draws ``bench/results/llm_build.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.common import pyplot, save_figure
from vocalis.providers.base import ChatMessage, LLMRequest
from vocalis.providers.embedded import ensure_assets
from vocalis.providers.embedded.llm import QwenLLM, cpu_features
from vocalis.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
LONG_SYSTEM = (
    "You are the voice assistant of a small restaurant called The Green Table. You answer "
    "questions about the menu, the opening hours, reservations and directions. The kitchen "
    "serves seasonal vegetables, fresh pasta made every morning, grilled fish on Fridays and a "
    "vegetarian tasting menu of five courses. Lunch is served from noon to half past two and "
    "dinner from six to ten, every day but Monday. Tables for more than eight people need a "
    "call the day before. The restaurant is two streets from the central station, next to the "
    "old bookshop, with a small car park behind it that closes at eleven. Children are welcome "
    "and there is a menu for them. Dogs may sit on the terrace. Speak in short, friendly "
    "sentences, because your words are read aloud by a speech synthesiser: no lists, no "
    "markdown, no emoji, and say numbers the way a person would. If you do not know an answer, "
    "say so and offer to take a message for the staff."
)


@dataclass
class Account:
    """One request as llama.cpp reported it."""

    prompt_n: int
    prompt_ms: float
    predicted_n: int
    predicted_ms: float


class _Capture(logging.Handler):
    """Collects the provider's DEBUG account of each request."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.accounts: list[Account] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("llm request:") and isinstance(record.args, tuple):
            n, _cached, ms, gen_n, gen_ms = (float(str(v)) for v in record.args)
            self.accounts.append(Account(int(n), ms, int(gen_n), gen_ms))


async def _request(llm: QwenLLM, capture: _Capture, messages: list[ChatMessage], n: int) -> Account:
    """One request generating ``n`` tokens, through the provider's own generator: it runs the
    request to llama.cpp's end, where the account comes (``stream`` stops a reply at its
    spoken-token cap first, so the spoken cap here is one token more than ``n``)."""
    before = len(capture.accounts)
    request = LLMRequest(tuple(messages), (), max_tokens=n + 1)
    async for _ in llm._generate(request, with_tools=False, max_tokens=n):
        pass
    if len(capture.accounts) == before:
        raise RuntimeError("llama.cpp reported no timings for the request")
    return capture.accounts[-1]


async def measure(
    llm: QwenLLM, capture: _Capture, runs: int, generate: int = 150
) -> dict[str, float]:
    prompt_rates, gen_rates, tail_ms, tail_tokens = [], [], [], []
    for _ in range(runs):
        nonce = uuid.uuid4().hex  # nothing of this prompt is in the cache
        system = ChatMessage("system", f"Session {nonce}. {LONG_SYSTEM}")
        a = await _request(llm, capture, [system, ChatMessage("user", "Hello?")], 1)
        prompt_rates.append(a.prompt_n / (a.prompt_ms / 1000))
        story = ChatMessage("user", "Tell me a long story about the restaurant's first year.")
        a = await _request(llm, capture, [system, story], generate)
        if a.predicted_n > 1:
            gen_rates.append(a.predicted_n / (a.predicted_ms / 1000))
        # the warm-up of a partial, then the final that adds the last words
        partial = ChatMessage("user", "Could you book me a table for")
        await _request(llm, capture, [system, partial], 1)
        final = ChatMessage("user", "Could you book me a table for four tonight?")
        a = await _request(llm, capture, [system, final], 1)
        tail_ms.append(a.prompt_ms)
        tail_tokens.append(a.prompt_n)
    return {
        "prompt_tps": statistics.median(prompt_rates),
        "gen_tps": statistics.median(gen_rates) if gen_rates else 0.0,
        "tail_ms": statistics.median(tail_ms),
        "tail_tokens": statistics.median(tail_tokens),
    }


async def _measured(llm: QwenLLM, capture: _Capture, runs: int, generate: int) -> dict[str, float]:
    """One event loop for the model's whole life: its slot gate lives on the loop it started."""
    try:
        await measure(llm, capture, 1, generate)  # the first requests warm llama.cpp's buffers
        return await measure(llm, capture, runs, generate)
    finally:
        await llm.aclose()


def build_record() -> str:
    record = Path(sys.prefix) / ".native-llm"
    if record.exists():
        # "native <llama.cpp system info>" or "prebuilt: <why the native build was skipped>"
        return record.read_text().strip().splitlines()[0].split(" CPU :")[0][:120]
    return "no .native-llm record (set-up not run through the Makefile?)"


def plot(results: dict[int, dict[str, float]], path: Path, title: str) -> None:
    plt = pyplot()
    threads = sorted(results)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, key, label in (
        (axes[0], "prompt_tps", "prompt tokens/s (~300, uncached)"),
        (axes[1], "gen_tps", "generated tokens/s"),
        (axes[2], "tail_ms", "turn tail: ms to evaluate"),
    ):
        ax.bar([str(t) for t in threads], [results[t][key] for t in threads], color="#4a7")
        ax.set_xlabel("threads")
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--generate", type=int, default=150, help="tokens per generation")
    parser.add_argument("--plot", default=str(RESULTS / "llm_build.png"))
    args = parser.parse_args(argv)
    capture = _Capture()
    logger = logging.getLogger("vocalis.providers.embedded.llm")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    assets = ensure_assets(Settings())
    build = build_record()
    features = cpu_features()
    print(f"model: {assets.llm_model.name}")
    print(f"build: {build}")
    print(f"llama.cpp CPU features: {features}")
    results: dict[int, dict[str, float]] = {}
    for threads in (int(t) for t in args.threads.split(",")):
        llm = QwenLLM(assets.llm_model, threads=threads, batch_threads=threads)
        results[threads] = r = asyncio.run(_measured(llm, capture, args.runs, args.generate))
        print(
            f"{threads} thread(s): prompt {r['prompt_tps']:6.1f} tokens/s   generation "
            f"{r['gen_tps']:5.1f} tokens/s   turn tail {r['tail_tokens']:.0f} tokens in "
            f"{r['tail_ms']:.0f} ms   (median of {args.runs})"
        )
    plot(results, Path(args.plot), f"{build[:60]} | {features[:60]}")
    print(f"plot: {args.plot}")
    logger.removeHandler(capture)
    return results


if __name__ == "__main__":
    main()

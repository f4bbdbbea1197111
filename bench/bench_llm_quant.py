"""The served LLM file against the shipped one: speed and how well each still reads text.

    .venv/bin/python -m bench.bench_llm_quant [--runs 3] [--extra PATH ...]

The set-up re-encodes the shipped GGUF for llama.cpp's repacked CPU kernels
(``providers/embedded/requantize.py``). A faster file is only worth serving if the model is
still the same model, so for each file this prints:

* **speed**, one thread, as ``bench_llm_build`` measures it (llama.cpp's own account): a
  ~300-token prompt from scratch, 150 generated tokens, a turn's cached tail;
* **reading**, teacher-forced: at every position of two reference texts the model's
  log-probability of the true next token (llama.cpp's ``top_logprobs``, the 100 most likely).
  The texts: the speech set's reference transcripts (read English prose) and a short
  restaurant dialogue in the model's chat template. Reported over the positions where every
  file has the true token in its top 100 (mean negative log-likelihood, nats: lower reads
  better), with how many positions that is, and how often a file's most likely token is the
  shipped file's (1.0 for the shipped file itself).

Tokens come from the GGUF's own vocabulary and merges (byte-level BPE through ``tokenizers``);
the split may differ from llama.cpp's in rare places, which changes nothing in a comparison of
files that share the vocabulary. ``--extra`` adds other GGUFs of the same model. Draws
``bench/results/llm_quant.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import math
import secrets
import statistics
from pathlib import Path
from typing import Any

import gguf
import xllamacpp
from tokenizers import Tokenizer, models, pre_tokenizers

from bench.bench_llm_build import RESULTS, _Capture, _measured
from bench.common import pyplot, save_figure, speech_dir
from vocalis.providers.embedded import assets as model_assets
from vocalis.providers.embedded.llm import QwenLLM
from vocalis.settings import Settings

TOP = 100
DIALOGUE = (
    "<|im_start|>system\nYou are a friendly voice assistant for a small restaurant. Keep answers "
    "short.<|im_end|>\n<|im_start|>user\nHi, could I book a table for four tonight at around "
    "seven?<|im_end|>\n<|im_start|>assistant\nOf course. A table for four at seven tonight. May I "
    "have a name for the booking?<|im_end|>\n<|im_start|>user\nIt's under Martinez. And do you "
    "have anything vegetarian on the menu?<|im_end|>\n<|im_start|>assistant\nThank you, Mr. "
    "Martinez, you're booked. Yes, we have a mushroom risotto, a grilled vegetable plate and a "
    "lentil soup, and most of our pasta can be made without meat.<|im_end|>\n"
)
SPECIAL = ("<|im_start|>", "<|im_end|>")


def reference_texts() -> dict[str, str]:
    manifest = speech_dir() / "manifest.tsv"
    with manifest.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    prose = " ".join(
        r["reference_transcript"].strip().capitalize().rstrip(".") + "."
        for r in rows
        if r["file"].startswith("asr_") and r["reference_transcript"].strip()
    )
    return {"prose": prose, "dialogue": DIALOGUE}


class GgufTokens:
    """Byte-level BPE from the file's own vocabulary; chat markers kept whole."""

    def __init__(self, path: Path) -> None:
        fields = gguf.GGUFReader(path).fields
        tokens = fields["tokenizer.ggml.tokens"].contents()
        merges = fields["tokenizer.ggml.merges"].contents()
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        pairs = [tuple(m.split(" ", 1)) for m in merges]
        self._bpe = Tokenizer(models.BPE(vocab=self.vocab, merges=pairs))
        self._bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)

    def ids(self, text: str) -> list[int]:
        out: list[int] = []
        for marker in SPECIAL:
            text = text.replace(marker, f"\0{marker}\0")
        for part in text.split("\0"):
            if part in SPECIAL:
                out.append(self.vocab[part])
            elif part:
                out.extend(self._bpe.encode(part).ids)
        return out


def xllamacpp_server(path: Path) -> Any:
    """llama.cpp's server in-process on ``path`` (two threads, nothing reachable outside)."""
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = 2048
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
    params.port = 0
    params.api_keys = [secrets.token_urlsafe(16)]
    params.verbosity = -1
    return xllamacpp.Server(params)


def read_along(path: Path, texts: dict[str, list[int]]) -> dict[str, list[tuple[float, int]]]:
    """Per text and position: (log-probability of the true token or NaN, the top token)."""
    server = xllamacpp_server(path)
    out: dict[str, list[tuple[float, int]]] = {}
    for name, ids in texts.items():
        rows = []
        for i in range(1, len(ids)):
            reply: Any = server.handle_completions(
                {
                    "prompt": ids[:i],
                    "n_predict": 1,
                    "n_probs": TOP,
                    "temperature": 0,
                    "cache_prompt": True,
                }
            )
            top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            found = {t["id"]: t["logprob"] for t in top}
            rows.append((float(found.get(ids[i], math.nan)), int(top[0]["id"])))
        out[name] = rows
    return out


def speed(path: Path, runs: int) -> dict[str, float]:
    capture = _Capture()
    logger = logging.getLogger("vocalis.providers.embedded.llm")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    try:
        llm = QwenLLM(path, threads=1, batch_threads=1)
        return asyncio.run(_measured(llm, capture, runs, 150))
    finally:
        logger.removeHandler(capture)


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    plt = pyplot()
    names = list(rows)
    keys = [
        ("prompt_tps", "prompt tokens/s (1 thread)"),
        ("gen_tps", "generated tokens/s (1 thread)"),
        ("nll_prose", "NLL, prose (nats; lower is better)"),
        ("nll_dialogue", "NLL, dialogue (nats)"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, keys, strict=True):
        values = [rows[n][key] for n in names]
        ax.bar(range(len(names)), values, color="#4a7")
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=7)
        ax.set_title(label, fontsize=9)
        if key.startswith("nll"):
            ax.set_ylim(min(values) * 0.97, max(values) * 1.01)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra", type=Path, nargs="*", default=[])
    parser.add_argument("--plot", default=str(RESULTS / "llm_quant.png"))
    args = parser.parse_args(argv)
    shipped = model_assets.ensure_assets(Settings(embedded_llm_requantize=False)).llm_model
    served = model_assets.ensure_assets(Settings(embedded_llm_requantize=True)).llm_model
    files = {"shipped": shipped, "served": served}
    files.update({p.stem: p for p in args.extra})
    tokens = GgufTokens(shipped)
    texts = {name: tokens.ids(text) for name, text in reference_texts().items()}
    readings = {name: read_along(path, texts) for name, path in files.items()}
    # the positions every file scored (true token in its top 100), the same for every row
    common = {
        text: [
            i
            for i in range(len(ids) - 1)
            if all(not math.isnan(readings[f][text][i][0]) for f in files)
        ]
        for text, ids in texts.items()
    }
    rows: dict[str, dict[str, float]] = {}
    for name, path in files.items():
        row = speed(path, args.runs)
        for text in texts:
            mine, base = readings[name][text], readings["shipped"][text]
            row[f"nll_{text}"] = -statistics.fmean(mine[i][0] for i in common[text])
            row[f"positions_{text}"] = len(common[text])
            row[f"agree_{text}"] = sum(a[1] == b[1] for a, b in zip(mine, base, strict=True)) / len(
                mine
            )
        rows[name] = row
        print(
            f"{name:10s} {path.name}: prompt {row['prompt_tps']:5.1f} tokens/s, generation "
            f"{row['gen_tps']:5.1f} tokens/s, turn tail {row['tail_ms']:.0f} ms; NLL prose "
            f"{row['nll_prose']:.3f} ({row['positions_prose']:.0f} positions, top token as "
            f"shipped {row['agree_prose']:.1%}), dialogue {row['nll_dialogue']:.3f} "
            f"({row['positions_dialogue']:.0f}, {row['agree_dialogue']:.1%})"
        )
    plot(rows, Path(args.plot))
    print(f"plot: {args.plot}")
    return rows


if __name__ == "__main__":
    main()

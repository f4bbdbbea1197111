"""A shared LLM server for a Vocalis cluster: llama.cpp's OpenAI-compatible HTTP server, run from
the xllamacpp wheel (no separate llama.cpp build), serving the embedded GGUF by default.

    python scripts/llm_server.py --port 8080 [--model PATH] [--threads 2]

Nodes reach it with VOCALIS_LLM_BASE_URL=http://HOST:8080/v1 and VOCALIS_LLM_MODEL=<file name>.
It serves until killed. With a GPU build or a bigger box, llama.cpp's own ``llama-server`` (or vLLM)
does the same job; see docs/deployment.md.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import xllamacpp

from vocalis.providers.embedded.assets import LLM_FAST_FILENAME, LLM_FILENAME, models_dir
from vocalis.settings import Settings

# the file the embedded stack serves (re-encoded by the set-up), else the one shipped
_MODELS = models_dir(Settings())
DEFAULT_MODEL = next(
    (_MODELS / n for n in (LLM_FAST_FILENAME, LLM_FILENAME) if (_MODELS / n).is_file()),
    _MODELS / LLM_FILENAME,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=2, help="slots (concurrent requests)")
    parser.add_argument("--context", type=int, default=8192, help="tokens, shared by the slots")
    args = parser.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.model_alias = {args.model.name}
    params.port = args.port
    params.n_ctx = args.context
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.cpuparams.poll = 0  # idle threads sleep: the nodes beside it need the CPU
    params.cpuparams_batch.poll = 0
    params.use_jinja = True  # the model's chat template, with tools
    params.cache_prompt = True
    params.verbosity = -1
    server = xllamacpp.Server(params)  # listens until the process ends
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # xllamacpp binds llama.cpp's default address, 127.0.0.1: put a proxy in front to share it
    print(f"serving {args.model.name} on http://127.0.0.1:{args.port}/v1", flush=True)
    stop.wait()
    del server


if __name__ == "__main__":
    main()

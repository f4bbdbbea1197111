"""The shipped Qwen GGUF re-encoded for llama.cpp's fastest CPU kernels (a set-up step).

The "Q4_K_M" file on PyPI is mostly ``Q5_0`` for this model (its 896-wide rows do not fit the
256-value K-quant blocks), and ``Q5_0`` has no repacked kernel in llama.cpp's CPU backend:
every token unpacks the fifth bit. ``Q4_0`` is repacked at load time into interleaved
blocks (``REPACK = 1`` in the build's system info) that AVX2 and AVX-512 multiply several rows
at a time. So the set-up writes a second file once, next to the assembled one:

* the feed-forward ``ffn_gate`` and ``ffn_up`` matrices (58 % of the transformer's matrix
  weights, 42 % of what a token multiplies with the output projection) in ``Q4_0``;
* every other matrix in ``Q8_0`` (the output projection already is), which keeps all the
  detail of ``Q5_0``/``Q6_K``;
* the token embedding (one row read per token, never multiplied) and the norms as shipped.

Measured here (2-core AVX2 host, native build, one thread), ``python -m bench.bench_llm_quant
--extra Q4_0.gguf Q8_0.gguf`` (speed as ``bench_llm_build`` measures it; reading quality as the
teacher-forced negative log-likelihood of the true next token, nats, over the speech set's
reference transcripts / a restaurant dialogue in the chat template, and how often the top token
is the shipped file's):

============================  ========  ==========  =========  =============  ===========
file                          prompt/s  generate/s  turn tail  NLL prose      NLL dialogue
============================  ========  ==========  =========  =============  ===========
shipped (Q5_0 mostly)         54.6      18.4        263 ms     3.483          2.732
this recipe                   74.3      22.6        139 ms     3.527 (85 %)   2.738 (87 %)
llama.cpp's Q4_0, Q8_0 output 80.4      26.3        156 ms     3.514 (79 %)   2.789 (81 %)
all Q8_0                      68.5      19.0        179 ms     3.485 (96 %)   2.734 (98 %)
============================  ========  ==========  =========  =============  ===========

All in ``Q8_0`` generates barely faster than shipped, from a file a quarter larger:
the gain is the kernels', not the file size's.
llama.cpp's own ``Q4_0`` is faster still but reads the dialogue, which is what the model does
here, clearly worse; this recipe costs 0.2 % there (1.3 % on the prose). The weights are
dequantized from the shipped file, not from the original 16-bit ones, so ``Q4_0`` here rounds
twice; ``Q8_0`` of ``Q5_0`` values is near-exact. Served to callers (2026-12-03, against the
shipped file, alternating): 4 at once (``bench_load --callers 4 --burst 4 --turns 4``, 64
turns each) voice-to-voice P50 1.85 vs 2.35 s, P95 2.82 vs 3.14 s; one caller
(``bench_voice --mode both``) ``balanced`` P50 1.06 vs 1.24 s, commit to first audio 106 vs
316 ms, ``min_latency`` P50 1.06 vs 1.13 s, 374 vs 479 ms.

Measured and not done (2026-12-03, same host): ``ffn_down`` in ``Q4_0`` as well (the
feed-forward block all ``Q4_0``, attention and output ``Q8_0``; written by :func:`requantize`
with ``ffn_down`` added to :data:`Q4_0_TENSORS`). Alone it is faster again
(one thread: prompt 91.6 vs 76.0 tokens/s, generation 26.9 vs 22.3, turn tail 127 vs 165 ms;
NLL prose 3.548 vs 3.562, dialogue 2.838 vs 2.795, shipped 2.793 in that run), but callers did
not hear it: 4 at once, 3 runs each way alternating, 96 turns each, voice-to-voice P50 1.75 vs
1.78 s, P95 2.82 vs 2.83 s. It costs most of the dialogue reading llama.cpp's ``Q4_0`` loses,
for nothing a caller feels, so ``ffn_down`` stays ``Q8_0``. The output projection in ``Q4_0``
too: generation 24.3 tokens/s, dialogue 2.820, not taken further.

``VOCALIS_EMBEDDED_LLM_REQUANTIZE=0`` serves the shipped file instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, Keys, quants

#: Bump when the recipe changes: the derived file's stamp records it, so an old file is rebuilt.
RECIPE = "ffn-gate-up-q4_0+rest-q8_0/1"
#: Matrices written as Q4_0 (name fragments); other matrices become Q8_0.
Q4_0_TENSORS = ("ffn_gate", "ffn_up")
#: Left as shipped: read one row at a time (embedding), or not a matrix.
KEPT_TENSORS = ("token_embd",)


def target_type(name: str, shipped: GGMLQuantizationType, dims: int) -> GGMLQuantizationType:
    """The encoding a tensor gets in the derived file."""
    if dims < 2 or shipped in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return shipped
    if any(part in name for part in KEPT_TENSORS):
        return shipped
    if any(part in name for part in Q4_0_TENSORS):
        return GGMLQuantizationType.Q4_0
    return GGMLQuantizationType.Q8_0


def requantize(source: Path, target: Path, progress: Callable[[str], None] = print) -> None:
    """Write ``target`` from ``source`` with the recipe above (atomically: temp file, rename)."""
    reader = GGUFReader(source)
    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".llm-q-", delete=False) as out:
        tmp = Path(out.name)
    try:
        writer = GGUFWriter(tmp, arch=str(arch))
        for field in reader.fields.values():
            # the writer writes the header fields itself; file_type would name the old mix
            if field.name.startswith("GGUF.") or field.name in (
                Keys.General.ARCHITECTURE,
                Keys.General.FILE_TYPE,
            ):
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        total = len(reader.tensors)
        for done, tensor in enumerate(reader.tensors, start=1):
            shipped = GGMLQuantizationType(tensor.tensor_type)
            want = target_type(tensor.name, shipped, len(tensor.shape))
            data = tensor.data
            if want != shipped:
                values = quants.dequantize(data, shipped).astype(np.float32)
                data = quants.quantize(values, want)
            writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=want)
            if done % 50 == 0 or done == total:
                progress(f"re-encoding the LLM for this CPU's kernels: {done * 100 // total}%")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.chmod(0o644)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

#!/usr/bin/env bash
# Rebuild the embedded LLM's engine (llama.cpp, through xllamacpp) for this machine's CPU.
#
# Why: the prebuilt xllamacpp wheel is compiled for any x86-64 with AVX2 (its system info says
# "AVX2 = 1", no AVX-512), so on a CPU with AVX-512/VNNI it leaves speed unused. The same
# release built from its sdist with GGML_NATIVE (the sdist's default) measured on the project's
# 2-core AMD EPYC, 0.5B model, 307-token prompt, 150 tokens generated, llama.cpp's own timings,
# interleaved runs: prompt 187-192 -> 291-305 tokens/s on 2 threads (96-100 -> 153-158 on 1),
# generation 47-49 -> 51-53 tokens/s (36-37 -> 42 on 1). Prompt evaluation is what a turn waits
# for before its first token, and what a conversation pays again when its slot was taken.
#
# The build takes ~6.5 minutes on 2 cores, once: the wheel is kept in a cache keyed by the
# xllamacpp version, the CPU's feature flags and the compiler, so a new checkout or a rebuilt
# venv on the same machine installs it in seconds, and a wheel built for one CPU is never
# installed on another (it could stop on an illegal instruction). Anything missing (not Linux
# x86-64, no cmake or C++ compiler, a failed build) keeps the prebuilt wheel, says why and
# succeeds: the server works either way, only slower.
#
#   scripts/native-llm.sh VENV      (the Makefile runs it; VOCALIS_NATIVE_LLM=0 skips it)
#
# Writes VENV/.native-llm: "native <system info>" or "prebuilt: <why>", read by the tests.
set -uo pipefail

venv=${1:-.venv}
py="$venv/bin/python"
marker="$venv/.native-llm"

keep_prebuilt() {
    echo "native llama.cpp: $1; keeping the prebuilt xllamacpp wheel"
    echo "prebuilt: $1" >"$marker"
    exit 0
}

[[ "${VOCALIS_NATIVE_LLM:-1}" != 0 ]] || keep_prebuilt "VOCALIS_NATIVE_LLM=0"
[[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] || keep_prebuilt "built only on Linux x86-64"
for tool in cmake make c++ cc; do
    command -v "$tool" >/dev/null || keep_prebuilt "no $tool on PATH"
done
version=$("$py" -c 'import importlib.metadata as m; print(m.version("xllamacpp"))') ||
    keep_prebuilt "xllamacpp is not installed in $venv"

flags=$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)
compiler=$(c++ --version | head -1 | sha256sum | cut -c1-8)
cache_root=${VOCALIS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vocalis/wheels}
cache="$cache_root/xllamacpp-$version-cpu$flags-cc$compiler"

if ! compgen -G "$cache/xllamacpp-*.whl" >/dev/null; then
    echo "native llama.cpp: building xllamacpp $version for this CPU (once, ~6-7 min on 2 cores)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # LLGuidance and BoringSSL are fetched from the network at build time and not used here
    # (the server runs in-process, with llama.cpp's own grammar engine).
    if ! CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_LLGUIDANCE=OFF -DLLAMA_BUILD_BORINGSSL=OFF" \
        NPROC="$(nproc)" \
        "$py" -m pip wheel --no-deps --no-binary xllamacpp "xllamacpp==$version" \
        -w "$work" >"$work/build.log" 2>&1; then
        tail -20 "$work/build.log"
        keep_prebuilt "the build failed (log above)"
    fi
    mkdir -p "$cache" && mv "$work"/xllamacpp-*.whl "$cache"/
fi

wheel=$(compgen -G "$cache/xllamacpp-*.whl" | head -1)
"$py" -m pip install --quiet --no-deps --force-reinstall "$wheel" ||
    keep_prebuilt "installing $wheel failed"
if ! info=$("$py" -c 'import xllamacpp; print(xllamacpp.get_system_info().strip())'); then
    "$py" -m pip install --quiet --no-deps --force-reinstall "xllamacpp==$version"
    keep_prebuilt "the native build did not load"
fi
echo "native llama.cpp: $info"
echo "native $info" >"$marker"

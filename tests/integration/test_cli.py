"""`vocalis` exit codes and help, as a user runs the command (issue #9)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.test_serve_process import VOCALIS
from vocalis import __version__


def vocalis(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if data_dir is not None:
        env["VOCALIS_DATA_DIR"] = str(data_dir)
    return subprocess.run([*VOCALIS, *args], env=env, capture_output=True, text=True, timeout=60)


def test_vocalis_alone_prints_help_and_succeeds() -> None:
    done = vocalis()
    assert done.returncode == 0
    assert "serve" in done.stdout and "talk" in done.stdout and "models" in done.stdout


def test_version() -> None:
    done = vocalis("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"vocalis {__version__}")


def test_bad_usage_exits_2() -> None:
    assert vocalis("fly").returncode == 2
    assert vocalis("serve", "--providers", "magic").returncode == 2
    assert vocalis("models").returncode == 2


def test_each_subcommand_has_its_own_help_naming_the_settings() -> None:
    prepare = vocalis("models", "prepare", "--help")
    assert prepare.returncode == 0
    assert prepare.stdout.startswith("usage: vocalis models prepare")
    serve = vocalis("serve", "--help").stdout
    for option in ("VOCALIS_HOST", "VOCALIS_PORT", "VOCALIS_PROVIDERS"):
        assert option in serve


def test_models_check_tells_what_is_missing(tmp_path: Path) -> None:
    done = vocalis("models", "check", data_dir=tmp_path)
    assert done.returncode == 1
    assert str(tmp_path / "models") in done.stderr
    assert "models prepare" in done.stderr

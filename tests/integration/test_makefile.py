"""The Makefile's targets do what the README says (issue #9): every target works or is gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from vocalis.server.background import free_port

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without an enclosing make's variables (``make test`` runs these tests)."""
    inherited = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    return {**{k: v for k, v in os.environ.items() if k not in inherited}, **extra}


def dry_run(*args: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        ["make", "-n", *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def phony_targets() -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert found is not None
    return found.group(1).split()


@pytest.mark.parametrize("target", phony_targets())
def test_every_target_runs_something_that_exists(target: str) -> None:
    lines = dry_run(target)
    assert lines, f"`make {target}` does nothing"
    for line in lines:
        for word in line.split():
            word = word.strip("'\"")
            if word.startswith((".venv/bin/", "bench/", "scripts/", "tests/")):
                assert (ROOT / word).exists(), f"`make {target}` runs missing {word}"
        for module in re.findall(r"-m (bench\.\w+)", line):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module


def test_host_and_port_given_to_make_reach_the_server() -> None:
    serve = dry_run("run", "HOST=0.0.0.0", "PORT=9001", "PROVIDERS=fake")[-1]
    assert serve.split() == [
        ".venv/bin/vocalis",
        "serve",
        *["--host", "0.0.0.0", "--port", "9001"],
        "--providers",
        "fake",
    ]


def test_without_make_variables_the_vocalis_settings_decide() -> None:
    """No hard-coded 127.0.0.1:8000, and a shell's own HOST variable is not taken for ours."""
    serve = dry_run("run", env={"HOST": "my-laptop", "VOCALIS_PORT": "9002"})[-1]
    assert serve.split() == [".venv/bin/vocalis", "serve"]


def test_make_run_listens_on_vocalis_port(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(VOCALIS_PORT=str(port), VOCALIS_DATA_DIR=str(tmp_path), VOCALIS_API_KEYS="")
    make = subprocess.Popen(
        ["make", "run", "PROVIDERS=fake"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so that the server under make can be stopped with it
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert make.poll() is None, "make run exited"
            assert time.monotonic() < deadline, "make run never listened on VOCALIS_PORT"
            time.sleep(0.2)
        assert health.json()["status"] == "ok"
        assert health.json()["storage"] == "ok"  # the real SQLite file answers
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)

"""No network at run time: the embedded server works in a namespace with no route out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.models
ROOT = Path(__file__).parent.parent.parent


def test_embedded_server_works_with_outbound_network_blocked() -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (needs unshare and root)")
    script = 'ip link set lo up 2>/dev/null; exec "$0" -m tests.integration.offline_probe'
    env = {**os.environ, "HF_HUB_OFFLINE": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [unshare, "-n", "sh", "-c", script, sys.executable],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("OFFLINE-OK"))
    assert len(line) > len("OFFLINE-OK ")

"""How to type ``vocalis`` on this machine, for hints printed to the operator.

After ``make run`` the command lives in ``.venv/bin`` and is usually not on ``PATH``; a hint that
says ``vocalis talk`` would then fail as typed. The hints name the script that is running.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def vocalis_command() -> str:
    """``vocalis`` when that resolves to this installation, else a path to its script."""
    script = Path(sys.executable).parent / "vocalis"
    if not script.is_file():
        return "vocalis"
    on_path = shutil.which("vocalis")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "vocalis"
    try:
        relative = os.path.relpath(script, Path.cwd())
    except ValueError:
        return str(script)
    return relative if not relative.startswith("..") else str(script)

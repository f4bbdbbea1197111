"""docs/configuration.md is generated from the Settings model and must match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vocalis.settings import Settings

ROOT = Path(__file__).parents[2]


def test_configuration_docs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + " (run: python scripts/gen_config_docs.py)"


def test_every_setting_is_documented_with_its_variable() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"| `{name}` | `VOCALIS_{name.upper()}` |" in text, name

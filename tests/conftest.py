from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.harness import Harness
from vocalis.providers.fake import build_fake_providers
from vocalis.server.app import create_app
from vocalis.settings import Settings

DATA = Path(__file__).parent / "data"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.close()


def make_client(**settings: object) -> TestClient:
    base: dict[str, object] = {"providers": "fake", "data_dir": "/tmp/vocalis-test-data"}
    base.update(settings)
    app = create_app(Settings(**base), providers=build_fake_providers())  # type: ignore[arg-type]
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(data_dir=str(tmp_path)) as c:
        yield c


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Cases sent by the fuzz tests (``tests/fuzzing.py``), when any ran."""
    from tests.fuzzing import CASES, PROFILE

    if CASES.counts:
        counts = ", ".join(f"{n} {name}" for name, n in sorted(CASES.counts.items()))
        terminalreporter.write_line(f"fuzz ({PROFILE} profile): {counts}")

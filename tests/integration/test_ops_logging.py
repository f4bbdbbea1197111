"""Structured logs: one JSON object per line, context fields, credentials masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from vocalis.logging_setup import configure_logging


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_and_context(restore_root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", json_output=True, stream=stream)
    log = logging.getLogger("vocalis.session")
    log.info("reply started", extra={"session_id": "sess_1", "reply_id": "resp_2"})
    log.debug("user said: my card number")  # below the level: never written
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("reply failed", extra={"session_id": "sess_1"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info"
    assert first["logger"] == "vocalis.session"
    assert first["message"] == "reply started"
    assert (first["session_id"], first["reply_id"]) == ("sess_1", "resp_2")
    assert "time" in first
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    assert "reply_id" not in second


def test_tokens_in_urls_are_masked(restore_root_logging: None) -> None:
    stream = io.StringIO()
    logging.getLogger("uvicorn.error").propagate = False  # as uvicorn's own log config leaves it
    configure_logging("info", json_output=False, stream=stream)
    logging.getLogger("uvicorn.error").info(
        '127.0.0.1:5000 - "WebSocket /v1/ws?token=SECRETVALUE" [accepted]'
    )
    text = stream.getvalue()
    assert "SECRETVALUE" not in text
    assert "token=<redacted>" in text


def test_logs_are_text_on_a_terminal_and_json_otherwise() -> None:
    """``log_json`` unset follows stderr; an explicit setting wins either way (issue #9)."""
    import io

    from vocalis.logging_setup import wants_json

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_json(None, io.StringIO()) is True
    assert wants_json(None, Terminal()) is False
    assert wants_json(True, Terminal()) is True
    assert wants_json(False, io.StringIO()) is False

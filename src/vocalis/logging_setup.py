"""Server logging: one JSON object per line (``log_json``; the default when stderr is not a
terminal) or readable text (the default on a terminal).

Every line carries ``time``, ``level``, ``logger`` and ``message``, plus ``session_id``,
``reply_id`` and the other context fields of :data:`CONTEXT_FIELDS` when a call passes them with
``extra=``::

    log.info("reply started", extra={"session_id": session.id, "reply_id": reply.reply_id})

Content rule (contract §6.7 and §17.6): what users say and what tools receive is personal data.
User speech text, agent reply text, tool arguments and tool results are logged at DEBUG level
only, never above; API keys, tokens and header values are never logged at any level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

CONTEXT_FIELDS: Final = (
    "session_id",
    "reply_id",
    "call_id",
    "agent_id",
    "request_id",
    "code",
    "reason",
    "provider",
    "stage",
    "duration_ms",
)
# Quiet below DEBUG: one line per HTTP request or connection attempt is noise for an operator.
_NOISY_LOGGERS: Final = ("uvicorn.access", "websockets", "httpx", "httpcore")
_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Credentials in URLs (``/v1/ws?token=…``, as uvicorn logs a WebSocket upgrade) are masked.
_TOKEN_IN_URL: Final = re.compile(r"(?i)([?&](?:token|api_key|key)=)[^&\s\"']+")


def redact(text: str) -> str:
    """``text`` with credentials passed as URL query parameters masked."""
    return _TOKEN_IN_URL.sub(r"\1<redacted>", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one compact JSON object (no newlines inside, UTF-8 kept)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines with the context fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        context = [
            f"{name}={record.__dict__[name]}"
            for name in CONTEXT_FIELDS
            if record.__dict__.get(name) is not None
        ]
        return f"{line} [{' '.join(context)}]" if context else line


def wants_json(setting: bool | None, stream: TextIO | None = None) -> bool:
    """``log_json`` unset: readable text for a person at a terminal, JSON for a log collector."""
    if setting is not None:
        return setting
    target = stream or sys.stderr
    isatty = getattr(target, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    level: str = "info", *, json_output: bool | None = True, stream: TextIO | None = None
) -> None:
    """Send every logger's records to ``stream`` (stderr) through one handler on the root logger.

    Uvicorn's loggers are routed here too; run uvicorn with ``log_config=None`` so that it does
    not install its own handlers again afterwards.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(json_output, stream) else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:  # undo uvicorn's own handlers, if it configured them already
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)

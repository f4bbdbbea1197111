#!/usr/bin/env python3
"""Writes docs/configuration.md from the Settings model (``--check``: fail if it is stale).

Descriptions come from the comments next to each field in ``src/vocalis/settings.py`` (a trailing
``# …`` or a comment line right above the field); a comment block after a blank line starts a
section. Fields without a comment use :data:`DESCRIPTIONS` below.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vocalis.settings import Settings  # noqa: E402

OUTPUT = ROOT / "docs" / "configuration.md"

# Sections the source does not mark with a comment block, by their first field.
SECTION_STARTS = {
    "host": ("Server", "Where the server listens, which providers it loads, and its logs."),
    "api_keys": (
        "Sessions and protocol",
        "Defaults are those of the wire contract (section 1); they are what hosted-API "
        "clients expect.",
    ),
}
DESCRIPTIONS = {
    "host": "Bind address. Without API keys only loopback addresses are allowed.",
    "port": "TCP port of HTTP and WebSocket traffic.",
    "providers": "Model stack: `embedded` (local models) or `fake` (deterministic, no models).",
    "data_dir": "Where the embedded models (`models/`, ~0.5 GB), the SQLite database, the "
    "secret key and recordings are kept.",
    "log_level": "`debug`, `info`, `warning` or `error`. User speech and tool arguments are "
    "logged at `debug` only.",
    "log_json": "One JSON object per log line (for log collectors); `false` for plain text.",
    "api_keys": "API keys clients present (`Authorization: Bearer <key>`). None = open "
    "development mode: no authentication, loopback only.",
    "default_max_session_duration_seconds": "Session duration cap, and the upper bound of a "
    "temporary token's `max_session_duration_seconds`.",
    "resume_grace_seconds": "How long a disconnected session waits for `session.resume` "
    "(0 disables resume).",
    "idle_timeout_seconds": "End a session after this long without speech or client "
    "messages (0 = never).",
    "legacy_ready_timeout_seconds": "Start a default session for older clients that never "
    "send `session.update` (0 disables).",
    "first_message_timeout_seconds": "Close a connection that sends no `session.update` or "
    "`session.resume` in time.",
    "max_sessions": "Sessions at once (attached or waiting for a resume); 0 = unlimited.",
    "input_audio_max_ahead_ms": "How far ahead of real time input audio may run before the "
    "excess is dropped.",
    "output_chunk_ms": "Duration of one `reply.audio` chunk (10-100).",
    "output_lead_ms": "How far ahead of real time reply audio is sent.",
    "speech_start_ms": "Continuous speech needed to open a user turn.",
    "backchannel_window_ms": "Speech without a recognised word that still counts as a "
    "backchannel while the agent speaks.",
    "backchannel_words": 'Words that never interrupt the agent ("uh-huh", "okay").',
    "default_voice": "Voice used when a session sets none.",
    "default_system_prompt": "System prompt used when a session sets none.",
    "recording": "Keep a stereo recording of each session (user left, agent right).",
    "session_retention_days": "Days session records, timelines and recordings are kept.",
    "ping_interval_seconds": "WebSocket ping interval.",
    "ping_timeout_seconds": "A client that does not answer a ping in time is disconnected "
    "(its session can be resumed).",
    "stt_api_key": 'Sent as "Authorization: Bearer …" when set.',
    "tts_api_key": 'Sent as "Authorization: Bearer …" when set.',
}


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Comment text by line number, and the numbers of blank lines."""
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    blank = {n for n, line in enumerate(source.splitlines(), 1) if not line.strip()}
    return comments, blank


def _field_lines(source: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if line.startswith("    ") and not line.startswith("     ") and ":" in stripped:
            name = stripped.split(":", 1)[0].strip()
            if name.isidentifier() and name in Settings.model_fields:
                lines.setdefault(name, number)
    return lines


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(str(v) for v in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        optional = type(None) in get_args(annotation)
        return " or ".join(parts) + (" (optional)" if optional else "")
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (list, dict):
        inner = ", ".join(_type_name(a) for a in get_args(annotation))
        return f"{origin.__name__}[{inner}]"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(name: str) -> str:
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        return "`" + ("~" + text[len(home) :] if text.startswith(home) else text) + "`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict):
        return "`" + json.dumps(value, ensure_ascii=False) + "`" if value else "empty"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sentence(text: str) -> str:
    """Capitalised, Markdown-safe prose from a source comment."""
    text = text.replace("*", "\\*")
    return text[:1].upper() + text[1:]


def render() -> str:
    """The whole Markdown document."""
    source = inspect.getsource(Settings)
    source_lines = source.splitlines()
    comments, blank = _comments(source)
    lines = _field_lines(source)
    out = [
        "# Configuration",
        "",
        "<!-- Generated by scripts/gen_config_docs.py from src/vocalis/settings.py; "
        "do not edit by hand. -->",
        "",
        "Every setting can be given as an environment variable `VOCALIS_<NAME>` (upper case) or",
        "as a key of a TOML file named by `VOCALIS_CONFIG`; environment variables win. Lists",
        'take JSON (`VOCALIS_API_KEYS=\'["k1","k2"]\'`) or comma-separated text',
        "(`VOCALIS_API_KEYS=k1,k2`); `null` sets an optional value to none.",
        "",
        "```toml",
        "# vocalis.toml, used with VOCALIS_CONFIG=vocalis.toml",
        'host = "0.0.0.0"',
        'api_keys = ["change-me"]',
        "max_sessions = 8",
        "```",
        "",
    ]
    for name in sorted(Settings.model_fields, key=lambda n: lines.get(n, 10**9)):
        number = lines.get(name)
        section = SECTION_STARTS.get(name)
        above: list[str] = []
        if number is not None:
            n = number - 1
            while n in comments and source_lines[n - 1].strip().startswith("#"):
                above.insert(0, comments[n])
                n -= 1
            if above and (n in blank or n == 0):
                title, _, rest = _split_title(" ".join(above))
                section = (title, rest)
                above = []
        if section is not None:
            out += ["", f"## {section[0]}", ""]
            if section[1]:
                out += [_sentence(section[1]), ""]
            out += ["| Setting | Environment variable | Type | Default | Description |"]
            out += ["|---|---|---|---|---|"]
        field = Settings.model_fields[name]
        text = " ".join(above)
        if number is not None and number in comments:
            text = (text + " " + comments[number]).strip()
        text = text or DESCRIPTIONS.get(name, "")
        if not text and field.description:
            text = field.description
        out.append(
            f"| `{name}` | `VOCALIS_{name.upper()}` | {_cell(_type_name(field.annotation))} "
            f"| {_cell(_default(name))} | {_cell(_sentence(text))} |"
        )
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def _split_title(text: str) -> tuple[str, str, str]:
    """A comment block as a heading and the explanation after it."""
    for mark in (";", ": ", ". "):
        head, sep, rest = text.partition(mark)
        if sep and len(head) < 70:
            return head.rstrip("."), sep, rest.strip()
    return text.rstrip("."), "", ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``vocalis serve | talk | models prepare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vocalis", description="Vocalis voice agent server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the voice agent server")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--providers", choices=["embedded", "fake"], default=None)
    talk = sub.add_parser(
        "talk",
        help="talk to a server from the terminal (microphone or WAV files)",
        description="Talk to a voice agent server. Exit codes: 0 ended normally, 1 session "
        "error from the server, 2 bad usage or input, 3 server unreachable or connection "
        "lost, 4 no reply in time.",
    )
    _talk_arguments(talk)
    models = sub.add_parser("models", help="manage the embedded models")
    models.add_argument("action", choices=["prepare"], help="assemble and check every model file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "talk":
        return _talk(args)
    return _prepare_models()


def _serve(args: argparse.Namespace) -> int:
    from vocalis.server.serve import refuse_open_bind, serve
    from vocalis.settings import Settings

    overrides: dict[str, Any] = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("providers", args.providers))
        if value is not None
    }
    settings = Settings(**overrides)
    from vocalis.logging_setup import configure_logging

    configure_logging(settings.log_level, json_output=settings.log_json)
    refusal = refuse_open_bind(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    print(
        f"Vocalis starting on ws://{settings.host}:{settings.port}/v1/ws "
        f"(providers: {settings.providers})",
        flush=True,
    )
    serve(settings)
    return 0


def _talk_arguments(parser: argparse.ArgumentParser) -> None:
    from vocalis.client.talk import add_arguments

    add_arguments(parser)


def _talk(args: argparse.Namespace) -> int:
    import os

    from vocalis.client.talk import run

    if args.api_key is None and args.token is None:
        args.api_key = os.environ.get("VOCALIS_API_KEY") or None
    return run(args)


def _prepare_models() -> int:
    from vocalis.settings import Settings

    try:
        from vocalis.providers.embedded import prepare_models
    except ImportError as exc:
        print(f"embedded models are not installed: {exc}", file=sys.stderr)
        return 1
    prepare_models(Settings())
    return 0


if __name__ == "__main__":
    sys.exit(main())

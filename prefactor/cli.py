"""The ``prefactor`` command line.

Each subcommand is added to the parser by its own ``_add_<name>`` function and
runs through the ``handler`` it sets, so new subcommands plug in without
touching the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from prefactor._version import __version__
from prefactor.config import DEFAULT_DB_PATH

__all__ = ["build_parser", "main"]

SERVER_EXTRA_HINT = "prefactor serve needs the server extra: pip install 'prefactor[server]'"


def _cmd_serve(args: argparse.Namespace) -> int:
    if find_spec("fastapi") is None or find_spec("uvicorn") is None:
        print(SERVER_EXTRA_HINT, file=sys.stderr)
        return 2
    # Imported by name only here: the web stack is an optional extra.
    serving: Any = importlib.import_module("prefactor.server.serve")
    token = args.token or os.environ.get("PREFACTOR_API_TOKEN") or ""
    generated = not token
    if generated:
        token = secrets.token_urlsafe(24)
    db = Path(args.db or os.environ.get("PREFACTOR_DB") or DEFAULT_DB_PATH)
    result: int = serving.serve(
        host=args.host, port=args.port, db=db, token=token, show_token=generated
    )
    return result


def _add_serve(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the local Prefactor API over a SQLite file",
        description="Run the Prefactor REST API locally, storing traces in a SQLite file.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8040, help="port (8040; 0 picks a free one)")
    parser.add_argument(
        "--db", default=None, help="database file (PREFACTOR_DB, else ./.prefactor/traces.db)"
    )
    parser.add_argument(
        "--token", default=None, help="bearer token (PREFACTOR_API_TOKEN, else generated)"
    )
    parser.set_defaults(handler=_cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="prefactor", description="Prefactor SDK tools.")
    parser.add_argument("--version", action="version", version=f"prefactor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())

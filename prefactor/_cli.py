"""The ``prefactor`` command line.

Each subcommand is added to the parser by its own ``_add_<name>`` function and
runs through the ``handler`` it sets, so new subcommands plug in without
touching the others.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import secrets
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from prefactor import traces
from prefactor._config import DEFAULT_DB_PATH, HttpClientConfig
from prefactor._errors import PrefactorConfigError, PrefactorHttpError
from prefactor._export.sinks import HttpSink
from prefactor._export.spool import DEFAULT_SPOOL_PATH, PushResult, Spool, push
from prefactor._render import render_instance
from prefactor._version import __version__
from prefactor.server.store import ApiProblem, StoreVersionError

__all__ = ["build_parser", "main"]

SERVER_EXTRA_HINT = "prefactor serve needs the server extra: pip install 'prefactor[server]'"


def _token_flag_refused(command: str) -> str:
    return (
        f"{command}: --token is not accepted, since every local user can read a"
        " process's command line; put the token in PREFACTOR_API_TOKEN or in a file named by"
        " --token-file"
    )


def _given_token(args: argparse.Namespace) -> tuple[str, str] | None:
    """The bearer token given to a command and where it came from, else ``None``.

    One rule for every command: the file named by ``--token-file`` (surrounding
    whitespace ignored), else ``PREFACTOR_API_TOKEN``; never the command line.

    Raises:
        OSError: the token file cannot be read.
        PrefactorConfigError: the token file is empty.
    """
    if args.token_file is not None:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise PrefactorConfigError(f"the token file {args.token_file} is empty")
        return token, f"the file {args.token_file}"
    token = os.environ.get("PREFACTOR_API_TOKEN") or ""
    return (token, "PREFACTOR_API_TOKEN") if token else None


def _add_token_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--token-file", default=None, metavar="PATH", help=help_text)
    # Refused with an explanation rather than unknown: a token on the command line is
    # readable by every local user for as long as the process runs.
    parser.add_argument("--token", default=None, help=argparse.SUPPRESS)


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.token is not None:
        print(f"prefactor {_token_flag_refused('serve')}", file=sys.stderr)
        return 2
    if any(find_spec(name) is None for name in ("fastapi", "uvicorn", "jinja2")):
        print(SERVER_EXTRA_HINT, file=sys.stderr)
        return 2
    if args.workers < 1:
        print("prefactor serve: --workers must be at least 1", file=sys.stderr)
        return 2
    # Imported by name only here: the web stack is an optional extra.
    serving: Any = importlib.import_module("prefactor.server.serve")
    # A string, not a Path: a Path would fold the '//' of a postgresql:// URL.
    db = args.db or os.environ.get("PREFACTOR_DB") or str(DEFAULT_DB_PATH)
    try:
        # Generated (and printed by the banner) when none is given.
        token, source = _given_token(args) or (secrets.token_urlsafe(24), None)
        result: int = serving.serve(
            host=args.host,
            port=args.port,
            db=db,
            token=token,
            token_source=source,
            workers=args.workers,
        )
    # The token, a store that cannot be used (PrefactorConfigError is a ValueError), or an
    # address that cannot be bound.
    except (OSError, ValueError, StoreVersionError) as exc:
        print(f"prefactor serve: {exc}", file=sys.stderr)
        return 2
    return result


def _add_serve(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the local Prefactor API over a SQLite file or PostgreSQL",
        description="Run the Prefactor REST API, storing traces in a SQLite file (the default)"
        " or a PostgreSQL database shared by several servers. The bearer token (16 characters"
        " or more) comes from --token-file, else PREFACTOR_API_TOKEN, else is generated and"
        " printed.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8040, help="port (8040; 0 picks a free one)")
    parser.add_argument(
        "--db",
        default=None,
        help="a SQLite file or a postgresql:// URL (PREFACTOR_DB, else ./.prefactor/traces.db)",
    )
    _add_token_options(
        parser, "read the bearer token from this file (else PREFACTOR_API_TOKEN, else generated)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes on the one port (1)"
    )
    parser.set_defaults(handler=_cmd_serve)


def _source(args: argparse.Namespace) -> HttpClientConfig | None:
    """The server to read from (``--url`` or the environment, with its token), else ``None``.

    Raises:
        PrefactorConfigError: ``--token`` was given, ``--url`` without a token, or an
            empty token file.
        OSError: the token file cannot be read.
    """
    if args.token is not None:
        raise PrefactorConfigError(_token_flag_refused(args.command))
    url = args.url or os.environ.get("PREFACTOR_API_URL")
    given = _given_token(args)
    if url and given is not None:
        return HttpClientConfig(api_url=url, api_token=SecretStr(given[0]))
    if args.url:
        raise PrefactorConfigError("--url needs a token: --token-file or PREFACTOR_API_TOKEN")
    return None


def _read_errors(run: Any) -> int:
    try:
        result: int = run()
    except BrokenPipeError:
        raise  # the reader went away: main() stops quietly
    except (
        OSError,  # a store or token file that cannot be read
        LookupError,
        PrefactorConfigError,
        PrefactorHttpError,
        StoreVersionError,
        ApiProblem,
    ) as exc:
        print(f"prefactor: {exc}", file=sys.stderr)
        return 1
    return result


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _cmd_traces(args: argparse.Namespace) -> int:
    def run() -> int:
        config = _source(args)
        if config is not None:
            found = traces.list_recent_remote(config, agent_id=args.agent, limit=args.limit)
        else:
            found = traces.list_recent(args.db, agent_id=args.agent, limit=args.limit)
        if args.json:
            _print_json(found)
            return 0
        if not found:
            print("no agent instances yet")
        for line in traces.summary_lines(found):
            print(line)
        return 0

    return _read_errors(run)


def _cmd_show(args: argparse.Namespace) -> int:
    def run() -> int:
        config = _source(args)
        if config is not None:
            if args.instance_id is None:
                raise LookupError("give the instance id to show from a server")
            instance, spans = traces.read_instance_remote(config, args.instance_id)
        else:
            instance, spans = traces.read_instance(args.instance_id, args.db)
        if args.json:
            _print_json({"instance": instance, "spans": spans})
        else:
            print(render_instance(instance, spans, verbose=args.verbose))
        return 0

    return _read_errors(run)


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="store file or postgresql:// URL (PREFACTOR_DB, else ./.prefactor/traces.db)",
    )
    parser.add_argument("--url", default=None, help="read from this Prefactor API instead")
    _add_token_options(parser, "read its bearer token from this file (else PREFACTOR_API_TOKEN)")


def _add_traces(commands: Any) -> None:
    parser = commands.add_parser(
        "traces",
        help="list recent agent instances",
        description="List recent agent instances, newest first, "
        "from the embedded store or a server.",
    )
    _add_source_options(parser)
    parser.add_argument("--agent", default=None, help="only this agent")
    parser.add_argument("--limit", type=int, default=20, help="how many (20)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the instances as a JSON array, as the API has them",
    )
    parser.set_defaults(handler=_cmd_traces)


def _add_show(commands: Any) -> None:
    parser = commands.add_parser(
        "show",
        help="print an instance's span tree",
        description="Print one agent instance's span tree with durations, statuses, the "
        "errors of failed spans and schema-violation flags.",
    )
    parser.add_argument("instance_id", nargs="?", help="the instance (default: the newest)")
    _add_source_options(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print every span's params and result",
    )
    output.add_argument(
        "--json",
        action="store_true",
        help='print {"instance": ..., "spans": [...]} as JSON, as the API has them',
    )
    parser.set_defaults(handler=_cmd_show)


async def _push_to(spool: Spool, config: HttpClientConfig) -> PushResult:
    sink = HttpSink(config)
    try:
        return await push(spool, sink, sink.spool_destination)
    finally:
        await sink.aclose()
        spool.close()


def _cmd_push(args: argparse.Namespace) -> int:
    def run() -> int:
        config = _source(args)
        if config is None:
            raise PrefactorConfigError(
                "push needs the API: PREFACTOR_API_URL (or --url) and PREFACTOR_API_TOKEN"
            )
        spool = Spool(args.spool)
        if not spool.pending(config.api_url):
            print(f"nothing waits in {spool.path} for {config.api_url}")
            return 0
        result = asyncio.run(_push_to(spool, config))
        print(
            f"sent {result.sent} spooled records to {config.api_url}"
            f" ({result.rejected} refused); {result.left} wait in {spool.path}"
        )
        if result.error is not None:
            print(f"prefactor: stopped at: {result.error}", file=sys.stderr)
        return 1 if result.left else 0

    return _read_errors(run)


def _add_push(commands: Any) -> None:
    parser = commands.add_parser(
        "push",
        help="send what the spool kept while the API was unreachable",
        description="Send the records the SDK kept in its spool (QueueConfig.spool_path) "
        "because the API could not take them, oldest first; each is sent once.",
    )
    parser.add_argument(
        "--spool", default=DEFAULT_SPOOL_PATH, help=f"the spool file ({DEFAULT_SPOOL_PATH})"
    )
    parser.add_argument("--url", default=None, help="the Prefactor API (PREFACTOR_API_URL)")
    _add_token_options(parser, "read its bearer token from this file (else PREFACTOR_API_TOKEN)")
    parser.set_defaults(handler=_cmd_push)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="prefactor", description="Prefactor SDK tools.")
    parser.add_argument("--version", action="version", version=f"prefactor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_traces(commands)
    _add_show(commands)
    _add_push(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``prefactor show | head``): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return result


if __name__ == "__main__":
    sys.exit(main())

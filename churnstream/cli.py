"""`churnstream <command>`: the one entry point of the product (also `python -m churnstream`)."""

from __future__ import annotations

import argparse
import sys

from churnstream.commands import (demo, fetch, generate, index, job, kibana, schema_registry, show_settings, stack,
                                  topics, verify)
from foundation import UserError
from foundation.logs import configure as configure_logs
from foundation.settings import Settings

# In the order `churnstream --help` lists them.
COMMANDS = (fetch, stack, schema_registry, topics, verify, show_settings, generate, job, index, demo, kibana)


class Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one sentence with exit code 2 (its own convention)."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"error: {message}; run '{self.prog} --help' for the valid options.\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="churnstream", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Not required here: main() checks it after the unknown flags, so `churnstream --nope` names --nope.
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _innermost(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The (sub)parser of the command the user chose, so an error points at its own --help."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _innermost(chosen, args)
    return parser


def parse_args(argv: list[str] | None = None):
    """Flags -> namespace; every mistake is one sentence on stderr and exit code 2."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001
        parser.error(f"a command is required, one of: {', '.join(commands)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logs(args.verbose)
    try:
        settings = Settings.from_env()
        # From here on secrets live only in `settings`: no child process (the Flink JVM and its Python
        # workers, whose environment Beam logs) inherits them.
        Settings.forget_secret_environment()
        return args.func(args, settings) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

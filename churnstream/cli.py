"""`churnstream <command>`: the one entry point of the product (also `python -m churnstream`)."""

from __future__ import annotations

import argparse
import json
import sys

from churnstream import UserError
from churnstream.logs import configure as configure_logs
from churnstream.settings import Settings


class Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one sentence with exit code 2 (its own convention)."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"error: {message}; run '{self.prog} --help' for the valid options.\n")


def _stack(args, settings: Settings) -> int:
    from churnstream.localstack import stack

    if args.action == "up":
        local = stack.up(settings)
        print(f"stack is up: Kafka {local.kafka_bootstrap}, Elasticsearch {local.es_url}, "
              f"Schema Registry {local.schema_registry_url}")
    elif args.action == "down":
        stopped = stack.down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        rows = stack.status(settings)
        for r in rows:
            state = "ready" if r["ready"] else ("starting" if r["running"] else "stopped")
            print(f"{r['service']:<16} {state:<9} pid={r['pid'] or '-':<8} log={r['log']}")
        return 0 if all(r["ready"] for r in rows) else 1
    return 0


def _schema_registry(args, settings: Settings) -> int:
    """The registry in the foreground (the compose service runs this; the local stack spawns it)."""
    import os

    from churnstream.localstack.schema_registry import command

    cmd, env = command(settings, host=args.host)
    os.execve(cmd[0], cmd, env)


def _fetch(args, settings: Settings) -> int:
    from churnstream.artifacts import fetch_all

    for key, path in fetch_all(settings).items():
        print(f"{key:<16} {path}")
    return 0


def _topics(args, settings: Settings) -> int:
    from churnstream.health import require_kafka
    from churnstream.topics import ensure_topics

    require_kafka(settings)
    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "none (all topics exist)"))
    return 0


def _verify(args, settings: Settings) -> int:
    from churnstream.expected import compute
    from churnstream.health import require_elasticsearch
    from churnstream.pii import hash_key
    from churnstream.verify import format_reports, verify
    from flink_jobs.params import JobOptions
    from generator import expected_records

    try:
        ledger = json.loads(open(args.ledger).read())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the ledger {args.ledger} ({e}); pass the file 'churnstream generate --ledger' wrote.")
    require_elasticsearch(settings)
    records = ((r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(ledger))
    reports = verify(settings, compute(records, JobOptions(), hash_key(settings)))
    print(format_reports(reports))
    return 0 if all(r.ok for r in reports) else 1


def _settings(args, settings: Settings) -> int:
    print(json.dumps(settings.redacted(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="churnstream", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Not required here: main() checks it after the unknown flags, so `churnstream --nope` names --nope.
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    s = sub.add_parser("fetch", help="download the pinned JVM artifacts into the cache (no-op when cached)")
    s.set_defaults(func=_fetch)

    s = sub.add_parser("stack", help="the local Kafka + Elasticsearch + Schema Registry stack")
    s.add_argument("action", choices=["up", "status", "down"])
    s.set_defaults(func=_stack)

    s = sub.add_parser("schema-registry", help="run the Schema Registry in the foreground (port CHURNSTREAM_REGISTRY_PORT)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 in a container)")
    s.set_defaults(func=_schema_registry)

    s = sub.add_parser("topics", help="create the project's Kafka topics (idempotent)")
    s.set_defaults(func=_topics)

    s = sub.add_parser("verify", help="recompute every index from a generator ledger and compare with Elasticsearch")
    s.add_argument("--ledger", required=True, help="the JSON ledger written by 'churnstream generate --ledger'")
    s.set_defaults(func=_verify)

    s = sub.add_parser("settings", help="print the effective settings (secrets as ***)")
    s.set_defaults(func=_settings)

    from generator import cli as generator_cli
    from flink_jobs import cli as job_cli
    from churnstream import demo
    from kibana import cli as kibana_cli

    generator_cli.add_parser(sub)
    job_cli.add_parser(sub)
    demo.add_parser(sub)
    kibana_cli.add_parser(sub)
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
        if args.command == "job":
            # flink_jobs.cli checks Kafka and Elasticsearch; a remote cluster that is not there is checked
            # here, before PyFlink spends a minute retrying it and ends in a Java stack trace.
            from churnstream.health import require_flink

            require_flink(settings.with_(flink_jobmanager=args.jobmanager or settings.flink_jobmanager))
        return args.func(args, settings) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`churnstream schema-registry`: the registry in the foreground (the compose service runs this;
the local stack spawns the same command)."""

from __future__ import annotations

import os


def add_parser(sub) -> None:
    s = sub.add_parser("schema-registry", help="run the Schema Registry in the foreground (port CHURNSTREAM_REGISTRY_PORT)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 in a container)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from foundation.localstack.schema_registry import command

    cmd, env = command(settings, host=args.host)
    os.execve(cmd[0], cmd, env)

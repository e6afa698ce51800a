"""One module per `churnstream` command, each registered the same way: ``add_parser(sub)`` adds
its subparser with ``func`` set to the function that runs it as ``func(args, settings)``.

Building the parser imports every command module, so a module imports at its top only what is
light; the clients and engines a command drives are imported when it runs. Measured on this
machine: importing elasticsearch takes 1.3 s, PyFlink 1.2 s, Faker 0.9 s, confluent_kafka 0.7 s,
against 0.3 s for all of the CLI, so `churnstream --help` and a mistyped flag answer at once.
"""

"""Run `tierd` with the object commands, whether or not cli.py wires them in yet.

As a script: `python cli_runner.py put NS KEY ...` behaves like `tierd put ...`.
Once cli.py calls add_commands itself, this is just cli.main.
"""
from __future__ import annotations

import argparse
import sys


def wired() -> bool:
    from tierd_daemon import cli
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return "put" in sub.choices


def main(argv: list[str]) -> int:
    from tierd_daemon import cli
    if wired():
        return cli.main(argv)
    from tierd_daemon.cli_objects import add_commands
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    common = argparse.ArgumentParser(add_help=False)
    cli._add_common(common, argparse.SUPPRESS)
    add_commands(sub, common)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    # exactly what cli.main does once wired
    return args.object_handler(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The `i2edit` command line: one entry point, one subcommand module per package.

Each package that contributes commands has a `cli.py` with `register(subparsers)`, which adds its
subcommands and sets `func` on them. Heavy imports (torch, transformers, Flask) happen inside the
handlers, so `i2edit --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Modules that register subcommands, in the order `--help` lists them.
COMMAND_MODULES = (
    "data_tools.cli",
    "dialogue.cli",
    "editing.cli",
    "stylegan_ops.cli",
    "server.serve_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2edit", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI prints errors for people, not tracebacks
        if os.environ.get("I2EDIT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        print("(set I2EDIT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

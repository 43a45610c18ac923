"""Global arguments, taken from anywhere on the command line as az's knack does, and output."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from acrtask.errors import ValidationError

# Flags that take an optional true|false value (az's three-state flags): bare means true.
OPTIONAL_BOOL_FLAGS = frozenset({"--no-push", "--no-cache"})


@dataclass
class GlobalArgs:
    output: str = "json"
    query: str | None = None
    verbose: bool = False
    debug: bool = False
    only_show_errors: bool = False


current = GlobalArgs()

GLOBAL_HELP = ("Global arguments (on any command): -o/--output json|jsonc|table|tsv|yaml|yamlc|none, "
               "--query JMESPATH, --verbose, --debug, --only-show-errors.")


def split_global_args(argv: list[str]) -> tuple[GlobalArgs, list[str]]:
    """Take the global arguments out of argv and give the rest to the command parser."""
    found = GlobalArgs()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in ("-o", "--output", "--query"):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise ValidationError(f"argument {name}: expected one argument.")
            if name == "--query":
                found.query = value
            else:
                found.output = value
        elif arg == "--verbose":
            found.verbose = True
        elif arg == "--debug":
            found.debug = True
        elif arg == "--only-show-errors":
            found.only_show_errors = True
        elif arg in OPTIONAL_BOOL_FLAGS:
            rest.append(arg)
            follows = argv[i + 1].lower() if i + 1 < len(argv) else ""
            if follows not in ("true", "false"):
                rest.append("true")
        else:
            rest.append(arg)
        i += 1
    if found.only_show_errors and (found.debug or found.verbose):
        raise ValidationError("--only-show-errors can't be used together with --debug or --verbose.")
    return found, rest


def configure_logging(args: GlobalArgs) -> None:
    level = logging.WARNING
    if args.debug:
        level = logging.DEBUG
    elif args.verbose:
        level = logging.INFO
    elif args.only_show_errors:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("acrtask")
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not args.debug:
        # httpx logs every request at INFO; that is --debug material.
        logging.getLogger("httpx").setLevel(logging.WARNING)


def emit(result: Any, transformer: Any = None) -> None:
    """Print a command's result in the format the user asked for."""
    from acrtask.cli.output import render

    text = render(result, current.output, current.query, transformer)
    if text:
        sys.stdout.write(text + "\n")

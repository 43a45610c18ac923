"""Global arguments, taken from anywhere on the command line as az's knack does, and output."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from acrtask.errors import ValidationError, printable
from acrtask.validate import is_utf8

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


def check_utf8(argv: list[str]) -> None:
    """Refuse arguments holding bytes that are not UTF-8: they could never be stored or printed.

    The value itself is never echoed: it may be a --secret-arg.
    """
    for i, arg in enumerate(argv):
        if is_utf8(arg):
            continue
        if arg.startswith("-"):
            flag = arg.partition("=")[0]
        else:
            flag = argv[i - 1] if i and argv[i - 1].startswith("-") else ""
        where = f"argument {printable(flag)}" if flag else f"argument {i + 1}"
        raise ValidationError(f"{where}: the value has bytes that are not UTF-8.",
                              "Give the value as UTF-8 text (rename a folder whose name is not UTF-8).")


def split_global_args(argv: list[str]) -> tuple[GlobalArgs, list[str]]:
    """Take the global arguments out of argv and give the rest to the command parser."""
    check_utf8(argv)
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
        # As az (knack) does: refused, exit 2, and no traceback, since --debug never took effect.
        raise ValidationError("--only-show-errors can't be used together with --debug or --verbose.",
                              "Give one of them.")
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

"""Global arguments, taken from anywhere on the command line as az's knack does, and output."""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

from acrtask.errors import ValidationError, printable
from acrtask.validate import is_utf8

# Flags that take an optional true|false value (az's three-state flags): bare means true.
OPTIONAL_BOOL_FLAGS = frozenset({
    "--no-push", "--no-cache", "--commit-trigger-enabled", "--base-image-trigger-enabled",
    "--pull-request-trigger-enabled", "--enabled", "--with-secure-properties",
})
_WORD = re.compile(r"[A-Za-z0-9]+")
# az flags with no meaning here: taken (with their values) and named once on stderr as ignored.
# The value says how many values the flag takes: 1, or "*" for az's nargs=* (--assign-identity [system]),
# or "?" for a three-state boolean.
IGNORED_FLAGS: dict[str, int | str] = {
    "-g": 1, "--resource-group": 1, "--subscription": 1, "--auth-mode": 1, "--cpu": 1, "--agent-pool": 1,
    "--log-template": 1, "--assign-identity": "*", "--is-system-task": "?",
}


@dataclass
class GlobalArgs:
    output: str = "json"
    query: str | None = None
    verbose: bool = False
    debug: bool = False
    only_show_errors: bool = False
    ignored: tuple[str, ...] = ()  # az flags given that mean nothing here (IGNORED_FLAGS)


current = GlobalArgs()

GLOBAL_HELP = ("Global arguments (on any command): -o/--output json|jsonc|table|tsv|yaml|yamlc|none, "
               "--query JMESPATH, --verbose, --debug, --only-show-errors. Accepted and ignored, with a note on "
               "stderr (they mean nothing outside Azure): -g/--resource-group, --subscription, --auth-mode, --cpu, "
               "--agent-pool, --log-template, --assign-identity, --is-system-task.")


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
            # As argparse's nargs='?': a word after the flag is its value (checked later: `maybe` is refused);
            # a flag, the end, or a path (the context of `acrtask build ... --no-push .`) means bare: true.
            follows = argv[i + 1] if i + 1 < len(argv) else ""
            if not _WORD.fullmatch(follows):
                rest.append("true")
        elif name in IGNORED_FLAGS:
            found.ignored += (name,)
            i = _skip_values(argv, i, IGNORED_FLAGS[name], bool(eq))
        else:
            rest.append(arg)
        i += 1
    if found.only_show_errors and (found.debug or found.verbose):
        # As az (knack) does: refused, exit 2, and no traceback, since --debug never took effect.
        raise ValidationError("--only-show-errors can't be used together with --debug or --verbose.",
                              "Give one of them.")
    return found, rest


def _skip_values(argv: list[str], i: int, takes: int | str, inline: bool) -> int:
    """The index of the last argument an ignored flag at `i` consumes (its values, if any)."""
    if inline:  # --flag=value
        return i
    if takes == 1:
        if i + 1 >= len(argv):
            raise ValidationError(f"argument {argv[i]}: expected one argument.")
        return i + 1
    if takes == "?":
        return i + 1 if i + 1 < len(argv) and argv[i + 1].lower() in ("true", "false") else i
    while i + 1 < len(argv) and not argv[i + 1].startswith("-"):  # nargs=*: up to the next flag
        i += 1
    return i


def note_ignored(args: GlobalArgs) -> None:
    """One line on stderr naming the az flags that were taken but mean nothing here."""
    if args.ignored and not args.only_show_errors:
        names = ", ".join(dict.fromkeys(args.ignored))
        sys.stderr.write(f"WARNING: Ignored here (no meaning outside Azure): {names}.\n")


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

#!/usr/bin/env python3
"""Write docs/cli.md from acrtask's own command tree, so the reference cannot drift from the code.

    python scripts/gen_cli_reference.py           # (re)write docs/cli.md
    python scripts/gen_cli_reference.py --check   # exit 1 if docs/cli.md is stale

The tree is the click command typer builds from `acrtask.cli.app.app`. Every visible command gets its
usage line, help text, options (flags, type, default, environment variable, required) and the
examples of its epilog. Hidden commands and options are left out. The output is deterministic:
commands are sorted by name and nothing depends on the clock, the terminal or the environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "cli.md"
PROG = "acrtask"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Node:
    """One command or group of the tree, with the click context it is parsed in."""

    path: tuple[str, ...]  # ("acrtask", "task", "create")
    command: Any
    context: Any

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def is_group(self) -> bool:
        return is_group(self.command)


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


def root_command() -> Any:
    """The click command of `acrtask` (typer 0.29 vendors click as typer._click)."""
    import typer.main

    from acrtask.cli.app import app

    return typer.main.get_command(app)


def root_node(command: Any | None = None) -> Node:
    import typer

    command = command if command is not None else root_command()
    context = typer.Context(command, info_name=PROG, **(command.context_settings or {}))
    return Node((PROG,), command, context)


def child(node: Node, name: str) -> Node | None:
    """The subcommand `name` of a group node (hidden ones included), or None."""
    import typer

    command = node.command.get_command(node.context, name)
    if command is None:
        return None
    context = typer.Context(command, info_name=name, parent=node.context, **(command.context_settings or {}))
    return Node((*node.path, name), command, context)


def children(node: Node) -> list[Node]:
    """Visible subcommands of a group, sorted by name."""
    found = []
    for name in sorted(node.command.list_commands(node.context)):
        sub = child(node, name)
        if sub is not None and not getattr(sub.command, "hidden", False):
            found.append(sub)
    return found


def walk(node: Node | None = None) -> Iterator[Node]:
    """Every visible command and group, depth first, the group before its members."""
    node = node or root_node()
    yield node
    if node.is_group:
        for sub in children(node):
            yield from walk(sub)


# -- parameters ---------------------------------------------------------------------------------------------


def help_names(node: Node) -> list[str]:
    return list(node.context.help_option_names)


def visible_params(node: Node) -> list[Any]:
    """The command's own options and arguments; the help option is described once, globally."""
    names = set(help_names(node))
    return [p for p in node.command.params if not getattr(p, "hidden", False)
            and not (set(p.opts) & names and getattr(p, "is_flag", False))]


def is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "option") == "option"


def flags(param: Any) -> list[str]:
    return [*param.opts, *getattr(param, "secondary_opts", [])]


def type_text(param: Any, context: Any) -> str:
    """`str`, `int`, `a|b` for choices, `flag` for a bare flag; `repeatable` for options given many times."""
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", []):
        return "flag"
    if hasattr(param, "display_type"):  # typer 0.29: <str>, <int>, <list[str]>, <a|b>
        text = param.display_type(context).strip("<>")
    else:  # plain click
        text = getattr(getattr(param, "type", None), "name", "text")
    if text.startswith("list[") and text.endswith("]"):
        text = text[5:-1]
    if getattr(param, "multiple", False):
        text += ", repeatable"
    return text


def default_text(param: Any) -> str | None:
    default = param.default
    if default is None or callable(default):
        return None
    if getattr(param, "is_flag", False) and default is False:
        return None
    if isinstance(default, list | tuple):
        return ", ".join(str(d) for d in default) or None
    if isinstance(default, bool):
        return "true" if default else "false"
    value = getattr(default, "value", default)  # an Enum member: its value
    return str(value)


def cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _usage(node: Node) -> str:
    usage = node.command.get_usage(node.context)
    return " ".join(usage.split()).removeprefix("Usage: ")


def _examples(epilog: str | None, global_help: str) -> list[str]:
    """The example command lines of an epilog ("Examples:" then indented lines)."""
    if not epilog or epilog.strip() == global_help.strip():
        return []
    lines = epilog.splitlines()
    if not lines or not lines[0].strip().lower().startswith("example"):
        return []
    return [line.strip() for line in lines[1:] if line.strip()]


def _anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


# -- rendering ----------------------------------------------------------------------------------------------


def render() -> str:
    from acrtask.cli.options import GLOBAL_HELP

    nodes = list(walk())
    root = nodes[0]
    out: list[str] = [
        "# Command reference",
        "",
        "<!-- Generated by scripts/gen_cli_reference.py from the command tree; do not edit by hand. -->",
        "<!-- Regenerate with: python scripts/gen_cli_reference.py -->",
        "",
        " ".join((root.command.help or "").split()),
        "",
        GLOBAL_HELP + " They are taken out of the command line before the command is parsed, so they "
        "may stand anywhere.",
        "",
        f"Every command and group also takes `{'`/`'.join(help_names(root))}`.",
        "",
        "## Commands",
        "",
    ]
    for node in nodes[1:]:
        depth = len(node.path) - 2
        summary = " ".join((node.command.get_short_help_str(limit=200) or "").split())
        out.append(f"{'  ' * depth}- [{node.name}](#{_anchor(node.name)}): {summary}")
    out.append("")

    for node in nodes[1:]:
        out += [f"## {node.name}", ""]
        help_text = " ".join((node.command.help or "").split())
        if help_text:
            out += [help_text, ""]
        out += ["```text", _usage(node), "```", ""]
        if node.is_group:
            out.append("Commands:")
            out.append("")
            for sub in children(node):
                out.append(f"- [{sub.name}](#{_anchor(sub.name)})")
            out.append("")
            continue
        params = visible_params(node)
        arguments = [p for p in params if not is_option(p)]
        options = [p for p in params if is_option(p)]
        if arguments:
            out += ["| Argument | Type | Required | Description |", "|---|---|---|---|"]
            for param in arguments:
                out.append(f"| `{(param.metavar or param.name).upper()}` | {cell(type_text(param, node.context))} "
                           f"| {'yes' if param.required else 'no'} | {cell(getattr(param, 'help', '') or '')} |")
            out.append("")
        if options:
            out += ["| Option | Type | Default | Description |", "|---|---|---|---|"]
            for param in options:
                names = ", ".join(f"`{flag}`" for flag in flags(param))
                default = "required" if param.required else (default_text(param) or "")
                default = f"`{default}`" if default and default != "required" else default
                description = getattr(param, "help", "") or ""
                envvar = getattr(param, "envvar", None)
                if envvar:
                    description += f" Environment variable: `{envvar}`."
                out.append(f"| {names} | {cell(type_text(param, node.context))} | {cell(default)} "
                           f"| {cell(description)} |")
            out.append("")
        else:
            out += ["No options of its own.", ""]
        examples = _examples(node.command.epilog, GLOBAL_HELP)
        if examples:
            out += ["Examples:", "", "```sh", *examples, "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/cli.md from acrtask's command tree.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is not up to date")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write (default: docs/cli.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run python scripts/gen_cli_reference.py\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`-r/--registry` on every task command, read as az reads it (registries.py), and the commands' note on stderr."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from acrtask.cli import options

Registry = Annotated[str | None, typer.Option(
    "--registry", "-r", envvar="ACRTASK_REGISTRY",
    help="The task's registry: a login server (localhost:5000), or a name as in az (myregistry means "
    "myregistry.azurecr.io, or what ACRTASK_REGISTRY_SUFFIX or 'acrtask registry add' says). Short -t names go "
    "under it; other commands only see its tasks.")]


def login_server(value: str | None) -> str | None:
    """The login server `-r value` means, or None when no -r (nor ACRTASK_REGISTRY) is given."""
    if value is None:
        return None
    from acrtask import wiring
    from acrtask.registries import is_login_server
    from acrtask.registries import login_server as resolve

    aliases = {} if is_login_server(value) else wiring.program().registry_aliases.all()
    return resolve(value, aliases, os.environ)


def note(message: str) -> None:
    """A WARNING line on stderr, as az's logger writes them (hidden by --only-show-errors)."""
    if not options.current.only_show_errors:
        sys.stderr.write(f"WARNING: {message}\n")

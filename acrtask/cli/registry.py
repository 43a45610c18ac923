"""`acrtask registry add|list|remove`: registry names for -r, so az command lines run unchanged."""

from __future__ import annotations

from typing import Annotated

import typer

from acrtask import wiring
from acrtask.cli.options import GLOBAL_HELP, emit

registry_app = typer.Typer(
    help="Name registries for -r/--registry: 'acrtask registry add myregistry localhost:5000' makes "
    "'-r myregistry' (from Azure's docs) mean localhost:5000 instead of myregistry.azurecr.io.",
    epilog=GLOBAL_HELP, no_args_is_help=True)


def _aliases():  # noqa: ANN202 - a state.aliases.RegistryAliases
    return wiring.program().registry_aliases


def _rows(found: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "loginServer": server} for name, server in sorted(found.items())]


def _table(result: object) -> list[dict[str, str]]:
    items = result if isinstance(result, list) else [result]
    return [{"NAME": r["name"], "LOGIN SERVER": r["loginServer"]} for r in items if isinstance(r, dict)]


@registry_app.command("add", epilog="Examples:\n\n  acrtask registry add myregistry localhost:5000")
def add(
    name: Annotated[str, typer.Argument(help="The name used with -r, as in az (myregistry).")],
    login_server: Annotated[str, typer.Argument(help="The login server it stands for (localhost:5000).")],
) -> None:
    """Make -r NAME mean LOGIN_SERVER (replacing what it meant before)."""
    key, server = _aliases().add(name, login_server)
    emit({"name": key, "loginServer": server}, _table)


@registry_app.command("list", epilog="Examples:\n\n  acrtask registry list -o table")
def list_aliases() -> None:
    """List the registry names and their login servers."""
    emit(_rows(_aliases().all()), _table)


@registry_app.command("remove", epilog="Examples:\n\n  acrtask registry remove myregistry")
def remove(name: Annotated[str, typer.Argument(help="The name to forget.")]) -> None:
    """Forget a registry name: -r NAME then means NAME.azurecr.io (or NAME + ACRTASK_REGISTRY_SUFFIX) again."""
    _aliases().remove(name)

"""`acrtask task export | import`: task definitions as TOML, for backups and git."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from acrtask.cli import options
from acrtask.cli.options import emit
from acrtask.cli.task import task_app


def _store():  # noqa: ANN202 - a StateStore
    from acrtask import wiring

    return wiring.program().state_store


@task_app.command(epilog="Examples:\n\n  acrtask task export > tasks.toml\n\n"
                  "  acrtask task export -n app-build --with-dependencies > app-build.toml")
def export(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this task. Default: every task.")] = None,
    with_dependencies: Annotated[bool, typer.Option(
        "--with-dependencies", help="Also the base images and digests the last runs recorded.")] = False,
    with_secrets: Annotated[bool, typer.Option(
        "--with-secrets", help="Also the values of secret build arguments (keep such a file private).")] = False,
) -> None:
    """Print task definitions as TOML (state.toml's shape), for backups and for keeping tasks in git."""
    from acrtask import transfer

    result = transfer.export(_store(), name, with_dependencies, with_secrets)
    sys.stdout.write(result.text)
    if result.secrets_left_out and not options.current.only_show_errors:
        sys.stderr.write(f"Left out the values of {result.secrets_left_out} secret build argument(s); on import, a "
                         "task that exists keeps its values (or pass --with-secrets).\n")


@task_app.command("import", epilog="Examples:\n\n  acrtask task import -f tasks.toml --dry-run\n\n"
                  "  acrtask task import -f tasks.toml --replace")
def import_tasks(
    file: Annotated[Path, typer.Option("--file", "-f", help="A TOML file written by 'acrtask task export'.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file and say what would change; "
                                          "change nothing.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace tasks that already exist (their recorded "
                                          "base images are kept unless the file has some).")] = False,
) -> None:
    """Create tasks from a TOML file: all of them or, if any entry is bad, none."""
    from acrtask import transfer

    imported = transfer.import_file(_store(), file, replace, dry_run)
    emit([item.to_dict(applied=not dry_run) for item in imported])

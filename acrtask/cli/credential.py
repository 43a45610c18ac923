"""`acrtask task credential add|update|remove|list`: a task's logins for other registries, as az's.

Passwords go to the state database (0600) and nowhere else: every command prints the login servers with their
user names, never a password. Keep the password out of your shell history with ACRTASK_CREDENTIAL_PASSWORD
or --password-stdin.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from acrtask import task_credentials
from acrtask.cli import scope, shapes
from acrtask.cli.options import GLOBAL_HELP, emit
from acrtask.cli.scope import Registry
from acrtask.cli.task import Name, _service, task_app
from acrtask.errors import ValidationError
from acrtask.model import Task

credential_app = typer.Typer(help="Manage a task's logins for other registries (its bases, pulls and pushes).",
                             epilog=GLOBAL_HELP, no_args_is_help=True)
task_app.add_typer(credential_app, name="credential")

LoginServer = Annotated[str, typer.Option(
    "--login-server", help="The registry's login server, e.g. localhost:5001 or mybaseregistry.azurecr.io.")]
Username = Annotated[str | None, typer.Option("--username", "-u", help="The user name for the registry.")]
Password = Annotated[str | None, typer.Option(
    "--password", "-p", envvar="ACRTASK_CREDENTIAL_PASSWORD",
    help="The password or token. Kept out of argv (ps, shell history) with ACRTASK_CREDENTIAL_PASSWORD or "
    "--password-stdin.")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
UseIdentity = Annotated[str | None, typer.Option(
    "--use-identity", help="az's managed identity ([system] or a client ID): there is none here, so the Docker "
    "config's login for the server is used.")]


def _credential(login_server: str, username: str | None, password: str | None, password_stdin: bool,
                use_identity: str | None) -> task_credentials.RegistryCredential:
    if password_stdin:
        if password is not None:
            raise ValidationError("-p/--password (or ACRTASK_CREDENTIAL_PASSWORD) and --password-stdin cannot be "
                                  "used together.", "Give the password one way.")
        password = sys.stdin.readline().rstrip("\r\n")
    if use_identity is not None:
        scope.note(f"--use-identity: managed identities exist only in Azure; the Docker config's login for "
                   f"{login_server} is used here.")
    return task_credentials.checked(login_server, username, password, use_identity)


def _listed(task: Task) -> dict:
    return shapes.credential_list(task.to_dict())


@credential_app.command("add", epilog="Examples:\n\n"
                        "  acrtask task credential add -n app-build --login-server localhost:5001 -u puller "
                        "--password-stdin < password.txt")
def credential_add(
    name: Name, login_server: LoginServer, registry: Registry = None, username: Username = None,
    password: Password = None, password_stdin: PasswordStdin = False, use_identity: UseIdentity = None,
) -> None:
    """Add a login for a registry to a task."""
    credential = _credential(login_server, username, password, password_stdin, use_identity)
    task = _service().change(name, scope.login_server(registry), lambda t: task_credentials.add(t, credential))
    emit(_listed(task))


@credential_app.command("update", epilog="Examples:\n\n"
                        "  acrtask task credential update -n app-build --login-server localhost:5001 -u puller -p NEW")
def credential_update(
    name: Name, login_server: LoginServer, registry: Registry = None, username: Username = None,
    password: Password = None, password_stdin: PasswordStdin = False, use_identity: UseIdentity = None,
) -> None:
    """Change a task's login for a registry."""
    credential = _credential(login_server, username, password, password_stdin, use_identity)
    task = _service().change(name, scope.login_server(registry), lambda t: task_credentials.update(t, credential))
    emit(_listed(task))


@credential_app.command("remove", epilog="Examples:\n\n"
                        "  acrtask task credential remove -n app-build --login-server localhost:5001")
def credential_remove(name: Name, login_server: LoginServer, registry: Registry = None) -> None:
    """Remove a task's login for a registry."""
    task = _service().change(name, scope.login_server(registry), lambda t: task_credentials.remove(t, login_server))
    emit(_listed(task))


@credential_app.command("list", epilog="Examples:\n\n  acrtask task credential list -n app-build")
def credential_list(name: Name, registry: Registry = None) -> None:
    """List a task's logins: login servers and user names (passwords are never shown)."""
    emit(_listed(_service().show(name, scope.login_server(registry))))

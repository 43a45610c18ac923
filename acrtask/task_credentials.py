"""Per-task registry logins (`task credential add|update|remove|list`) and where they are used.

A task's credentials are part of the task (az's `credentials.customRegistries`), so they are stored with it,
passwords included, only in the 0600 state database, and never shown. They come first for that task's base checks,
pulls and pushes; the Docker config serves every other registry:

- `TaskCredentialSource` is a registry client's credential source: the task's logins, then the Docker config.
- `AllTasksCredentials` is the watch's: any task's login for a server, then the Docker config.
- builds get them in a private auth file (builders/authfile.py), never on a command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from acrtask.builders.authfile import private_auth
from acrtask.errors import NotFoundError, ValidationError
from acrtask.model import RegistryCredential, Task

__all__ = ["AllTasksCredentials", "RegistryCredential", "TaskCredentialSource", "add", "checked", "find", "remove",
           "build_auth", "secrets_of", "update"]
from acrtask.registries import normalise_server
from acrtask.registry.credentials import Credentials, DockerCredentials, config_key


def _key(server: str) -> str:
    return config_key(server.lower())


def find(task: Task, login_server: str) -> RegistryCredential | None:
    wanted = _key(login_server)
    return next((c for c in task.credentials if _key(c.login_server) == wanted), None)


def checked(login_server: str, username: str | None, password: str | None,
            identity: str | None) -> RegistryCredential:
    """A credential from az's flags: -u with -p, or --use-identity."""
    if (username is None) != (password is None) or (username == "" or password == ""):
        raise ValidationError("-u/--username and -p/--password go together.",
                              "Give both, or --use-identity (then the Docker config's login for the server is used).")
    if username is None and identity is None:
        raise ValidationError("A credential needs -u/--username and -p/--password, or --use-identity.",
                              "Give the registry's user name and password.")
    return RegistryCredential(normalise_server(login_server), username, password, identity)


def add(task: Task, credential: RegistryCredential) -> Task:
    if find(task, credential.login_server) is not None:
        raise ValidationError(f"Login server '{credential.login_server}' already exists. You cannot add it again.",
                              "Use 'acrtask task credential update' to change it.")
    return replace(task, credentials=(*task.credentials, credential))


def update(task: Task, credential: RegistryCredential) -> Task:
    if find(task, credential.login_server) is None:
        raise NotFoundError(f"Login server '{credential.login_server}' not found.",
                            "Run 'acrtask task credential list' to see the task's login servers.")
    wanted = _key(credential.login_server)
    return replace(task, credentials=tuple(credential if _key(c.login_server) == wanted else c
                                           for c in task.credentials))


def remove(task: Task, login_server: str) -> Task:
    server = normalise_server(login_server)
    if find(task, server) is None:
        raise NotFoundError(f"Login server '{server}' not found.",
                            "Run 'acrtask task credential list' to see the task's login servers.")
    wanted = _key(server)
    return replace(task, credentials=tuple(c for c in task.credentials if _key(c.login_server) != wanted))


def secrets_of(credentials: Iterable[RegistryCredential]) -> list[str]:
    """What a log must never show."""
    return [c.password for c in credentials if c.password]


def _as_credentials(credential: RegistryCredential) -> Credentials | None:
    if credential.username is None or not credential.password:
        return None  # --use-identity: the Docker config's login serves
    return Credentials(credential.username, credential.password)


class TaskCredentialSource:
    """The credential source of a registry client working for one task: its logins, then the Docker config."""

    def __init__(self, credentials: Iterable[RegistryCredential], fallback: DockerCredentials | None = None) -> None:
        self._found = {_key(c.login_server): found for c in credentials
                       if (found := _as_credentials(c)) is not None}
        self._fallback = fallback if fallback is not None else DockerCredentials()

    def get(self, registry: str) -> Credentials | None:
        return self._found.get(_key(registry)) or self._fallback.get(registry)


class AllTasksCredentials:
    """The watch's credential source: any task's login for the server, then the Docker config.

    Read from the tasks when a registry is first talked to (the client keeps what it got per registry)."""

    def __init__(self, tasks: Callable[[], Iterable[Task]], fallback: DockerCredentials | None = None) -> None:
        self._tasks = tasks
        self._fallback = fallback if fallback is not None else DockerCredentials()

    def get(self, registry: str) -> Credentials | None:
        wanted = _key(registry)
        for task in self._tasks():
            for credential in task.credentials:
                if _key(credential.login_server) == wanted and (found := _as_credentials(credential)):
                    return found
        return self._fallback.get(registry)


@contextmanager
def build_auth(task: Task, registries: Iterable[str]) -> Iterator[Path | None]:
    """A private auth file for a build of `task` (None when it has no credentials: the builder then finds its
    logins as it always does). It holds, for each registry the build pulls from or pushes to, the task's
    login, else the Docker config's; it is removed when the build ends."""
    if not task.credentials:
        yield None
        return
    docker = DockerCredentials()
    source = TaskCredentialSource(task.credentials, docker)
    with private_auth(registries, source.get, docker_config=docker.config_path().parent) as files:
        yield files.file

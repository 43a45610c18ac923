"""Registry credentials for a build on a remote engine, handed over the engine's own way.

The engine's client on this machine reads an auth file and sends what it needs over the engine's
API (podman: `--authfile F` -> X-Registry-Auth / X-Registry-Config headers; docker: DOCKER_CONFIG
-> the same headers; buildx: DOCKER_CONFIG -> the BuildKit session's auth provider, which answers
the daemon's requests for credentials). So nothing secret is on a command line here, and acrtask
writes nothing to the build host's disk.

The file holds only the registries this build pulls from or pushes to (left to themselves, the
clients send every credential they find), sits in a private temporary folder (0700, file 0600)
and is removed when the build ends.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["AuthFiles", "LoginSecrets", "auth_document", "private_auth"]

_PLUGINS = "cli-plugins"


class LoginSecrets(Protocol):
    """What registry/credentials.py finds for a registry (read only)."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...

    @property
    def identity_token(self) -> str: ...


CredentialLookup = Callable[[str], "LoginSecrets | None"]


@dataclass(frozen=True)
class AuthFiles:
    folder: Path  # use as DOCKER_CONFIG
    file: Path  # config.json: docker's config and containers' auth.json in one shape
    registries: tuple[str, ...]  # the registries it holds credentials for

    def secrets(self) -> list[str]:
        """Every value in the file a log must never show."""
        found: list[str] = []
        for entry in json.loads(self.file.read_text(encoding="utf-8"))["auths"].values():
            found += [value for key, value in entry.items() if key in ("auth", "identitytoken") and value]
        return found


def auth_document(registries: Iterable[str], lookup: CredentialLookup) -> dict[str, object]:
    """`{"auths": {registry: {"auth": base64(user:password)} | {"identitytoken": ...}}}` for those found."""
    auths: dict[str, dict[str, str]] = {}
    for registry in sorted(set(registries)):
        found = lookup(registry)
        if found is None:
            continue
        if found.identity_token:
            auths[registry] = {"username": found.username, "identitytoken": found.identity_token}
        else:
            raw = f"{found.username}:{found.password}".encode()
            auths[registry] = {"auth": base64.b64encode(raw).decode("ascii")}
    return {"auths": auths}


@contextmanager
def private_auth(registries: Iterable[str], lookup: CredentialLookup,
                 docker_config: Path | None = None) -> Iterator[AuthFiles]:
    """A temporary auth file for `registries` (an empty one when none has credentials: the client
    then sends nothing, rather than every credential it knows), removed on exit.

    `docker_config`: the user's docker config folder; its cli-plugins (buildx) stay reachable.
    """
    document = auth_document(registries, lookup)
    with tempfile.TemporaryDirectory(prefix="acrtask-auth-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o700)
        file = folder / "config.json"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out)
        if docker_config is not None and (docker_config / _PLUGINS).is_dir():
            (folder / _PLUGINS).symlink_to(docker_config / _PLUGINS)
        auths = document["auths"]
        assert isinstance(auths, dict)
        yield AuthFiles(folder, file, tuple(auths))

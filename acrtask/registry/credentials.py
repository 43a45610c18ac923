"""Registry credentials the way the docker CLI finds them: config.json `auths`, `credHelpers`, `credsStore`.

Lookup for a registry (docker CLI `getAuthConfigKey` and `GetCredentialsStore`):

1. `DOCKER_AUTH_CONFIG` (JSON with `auths`) when set, then `$DOCKER_CONFIG/config.json`, else
   `~/.docker/config.json`.
2. The key is `https://index.docker.io/v1/` for Docker Hub, else `host[:port]`; legacy keys such as
   `https://host/v1/` match by host name.
3. `credHelpers[key]`, else `credsStore`, runs `docker-credential-<name> get` with the server URL on stdin;
   "credentials not found" means anonymous. Without a helper, the `auths` entry is used (`auth` is
   base64 `user:password`; `identitytoken` is an OAuth refresh token).

Secrets never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acrtask.errors import RegistryError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # no path separators: never run ../../anything
_HELPER_TIMEOUT = 30.0
_IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username with a password and/or an identity (OAuth refresh) token. The repr shows no secret."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password or self.identity_token}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secrets(self) -> list[str]:
        found = [s for s in (self.password, self.identity_token) if s]
        return found + [self.basic_header().split(" ", 1)[1]]


def config_key(registry: str) -> str:
    """The key docker login stores credentials under."""
    return DOCKER_HUB_KEY if registry.lower() in _HUB_NAMES else registry


def _hostname(key: str) -> str:
    """docker's ConvertToHostname: strip a scheme and any path (`https://host:5000/v1/` -> `host:5000`)."""
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]


def _lookup(table: Mapping[str, Any], key: str) -> Any:
    if key in table:
        return table[key]
    wanted = _hostname(key)
    for candidate, value in table.items():
        if isinstance(candidate, str) and _hostname(candidate) == wanted:
            return value
    return None


def _config_error(path: str, problem: str) -> RegistryError:
    return RegistryError(f"Cannot use the Docker config {path}: {problem}.",
                         "Fix the file, or move it away to use registries anonymously.", code="CONFIG")


class DockerCredentials:
    """Reads credentials on demand. Blocking (file reads, helper processes): call it from a thread."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self._run = run

    def config_path(self) -> Path:
        base = self.environ.get("DOCKER_CONFIG")
        if base:
            return Path(base) / "config.json"
        return Path(self.environ.get("HOME") or Path.home()) / ".docker" / "config.json"

    def get(self, registry: str) -> Credentials | None:
        """Credentials for `registry` (as written in image references, e.g. `docker.io`), or None."""
        key = config_key(registry)
        inline = self.environ.get("DOCKER_AUTH_CONFIG")
        if inline:
            found = self._from_auths(self._parse(inline, "DOCKER_AUTH_CONFIG"), key, "DOCKER_AUTH_CONFIG")
            if found is not None:
                return found
        path = self.config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _config_error(str(path), exc.strerror or exc.__class__.__name__) from None
        config = self._parse(text, str(path))
        helpers = config.get("credHelpers")
        helper = _lookup(helpers, key) if isinstance(helpers, dict) else None
        if not helper:
            helper = config.get("credsStore")
        if isinstance(helper, str) and helper:
            return self._from_helper(helper, key)
        return self._from_auths(config, key, str(path))

    @staticmethod
    def _parse(text: str, where: str) -> dict[str, Any]:
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise _config_error(where, f"not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
        if not isinstance(config, dict):
            raise _config_error(where, "not a JSON object")
        return config

    @staticmethod
    def _from_auths(config: Mapping[str, Any], key: str, where: str) -> Credentials | None:
        auths = config.get("auths")
        entry = _lookup(auths, key) if isinstance(auths, dict) else None
        if not isinstance(entry, dict):
            return None
        username = entry.get("username") or ""
        password = entry.get("password") or ""
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _config_error(where, f"the auth entry for {key} is not base64 user:password") from None
            username, sep, password = decoded.partition(":")
            if not sep or not username:
                raise _config_error(where, f"the auth entry for {key} is not user:password")
            password = password.strip("\x00")
        token = entry.get("identitytoken") or ""
        if not isinstance(username, str) or not isinstance(password, str) or not isinstance(token, str):
            raise _config_error(where, f"the entry for {key} has non-string fields")
        if not (password or token):
            return None
        return Credentials(username, password, token)

    def _from_helper(self, name: str, server_url: str) -> Credentials | None:
        program = f"docker-credential-{name}"
        if not _HELPER_NAME.fullmatch(name):
            raise _config_error(self.config_path().as_posix(), f"credential helper name {name!r} is not valid")
        executable = shutil.which(program, path=self.environ.get("PATH"))
        if executable is None:
            raise RegistryError(f"The credential helper {program} (from your Docker config) is not on PATH.",
                                f"Install {program}, or remove it from the Docker config.", code="CONFIG")
        try:
            # An argument list and no shell; the server URL goes on stdin, as the helper protocol says.
            done = self._run([executable, "get"], input=server_url, capture_output=True, text=True,  # noqa: S603
                             timeout=_HELPER_TIMEOUT, env=self.environ, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RegistryError(f"The credential helper {program} could not run ({exc.__class__.__name__}).",
                                f"Check that {program} works: echo {server_url} | {program} get",
                                code="CONFIG") from None
        out = (done.stdout or "").strip()
        if done.returncode != 0:
            if "credentials not found" in out.lower():
                return None
            # What a helper prints may be a credential (a leaky helper echoes its secret): never repeat it.
            raise RegistryError(
                f"The credential helper {program} failed (exit {done.returncode}) for {server_url}.",
                f"Run it to see why: echo {server_url} | {program} get", code="CONFIG")
        try:
            answer = json.loads(out)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RegistryError(f"The credential helper {program} gave an answer that is not JSON.",
                                f"Check that {program} works: echo {server_url} | {program} get",
                                code="CONFIG")
        username, secret = answer.get("Username") or "", answer.get("Secret") or ""
        if not isinstance(username, str) or not isinstance(secret, str) or not secret:
            return None
        if username == _IDENTITY_TOKEN_USER:
            return Credentials("", identity_token=secret)
        return Credentials(username, secret)


class GivenCredentials:
    """Credentials given on the command line for one registry (`image import -u/-p`); the Docker config's
    for every other registry."""

    def __init__(self, registry: str, credentials: Credentials, fallback: DockerCredentials) -> None:
        self._registry = registry.lower()
        self._credentials = credentials
        self._fallback = fallback

    def get(self, registry: str) -> Credentials | None:
        if config_key(registry.lower()) == config_key(self._registry):
            return self._credentials
        return self._fallback.get(registry)

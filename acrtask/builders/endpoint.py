"""A build endpoint: a build engine on another machine (or socket) that runs builds for acrtask.

Pure values: the engine, the URL the engine's own client connects to, how many builds it takes at
once, and the platforms it builds. `acrtask builder add` stores them (acrtask/endpoints.py); the
pool (builders/pool.py) places runs on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from acrtask.errors import ValidationError
from acrtask.platform import DEFAULT_PLATFORM, Platform

__all__ = ["Endpoint", "Engine", "check_name", "check_url"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MAX_SLOTS = 64


class Engine(StrEnum):
    PODMAN = "podman"  # `podman --remote --url URL`
    DOCKER = "docker"  # the Docker API: DOCKER_HOST=URL docker build / docker push
    BUILDKIT = "buildkit"  # a BuildKit daemon through `docker buildx create --driver remote URL`


# The URL schemes each engine's own client speaks.
_SCHEMES = {
    Engine.PODMAN: ("tcp", "ssh", "unix"),
    Engine.DOCKER: ("tcp", "ssh", "unix"),
    Engine.BUILDKIT: ("tcp", "unix"),
}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValidationError(f"Invalid build endpoint name {name!r}.",
                              "Use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def check_url(url: str, engine: Engine) -> str:
    """`url` if `engine`'s client can connect to it: tcp://host:port, ssh://user@host[:port]/socket, unix:///path."""
    schemes = _SCHEMES[engine]
    examples = {"tcp": "tcp://build1.example.com:8888", "ssh": "ssh://core@build1/run/podman/podman.sock",
                "unix": "unix:///run/podman/podman.sock"}
    hint = f"Give a {engine} URL such as " + " or ".join(examples[s] for s in schemes) + "."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(f"Invalid --url {url!r}: not a URL.", hint) from None
    if parts.scheme not in schemes:
        raise ValidationError(f"Invalid --url {url!r}: {engine} endpoints are reached over "
                              f"{', '.join(s + '://' for s in schemes)}.", hint)
    if parts.query or parts.fragment or any(ch.isspace() for ch in url):
        raise ValidationError(f"Invalid --url {url!r}: no spaces, query or fragment.", hint)
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValidationError(f"Invalid --url {url!r}: a unix socket URL is unix:///absolute/path.", hint)
    elif not parts.hostname:
        raise ValidationError(f"Invalid --url {url!r}: it names no host.", hint)
    elif parts.scheme == "tcp" and (port is None or parts.path not in ("", "/")):
        raise ValidationError(f"Invalid --url {url!r}: a tcp URL is tcp://host:port.", hint)
    elif parts.scheme == "ssh" and parts.password is not None:
        raise ValidationError(f"Invalid --url {url!r}: a password does not belong in the URL.",
                              "Use an SSH key (--identity, or your ssh-agent).")
    return url


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    engine: Engine = Engine.PODMAN
    max_concurrent: int = 2  # builds at once (its slots)
    platforms: tuple[Platform, ...] = (DEFAULT_PLATFORM,)
    identity: str | None = None  # podman over ssh: the private key file (`--identity`)
    tls_dir: str | None = None  # docker / buildkit over tcp: ca.pem, cert.pem, key.pem

    def __post_init__(self) -> None:
        check_name(self.name)
        check_url(self.url, self.engine)
        if not 1 <= self.max_concurrent <= MAX_SLOTS:
            raise ValidationError(f"Invalid --max-concurrent {self.max_concurrent}: from 1 to {MAX_SLOTS}.",
                                  "Give how many builds the endpoint runs at once.")
        if not self.platforms:
            raise ValidationError(f"The build endpoint {self.name} serves no platform.",
                                  "Give at least one --platform, e.g. linux/amd64.")
        if self.identity and (self.engine is not Engine.PODMAN or not self.url.startswith("ssh://")):
            raise ValidationError("--identity is for podman endpoints reached over ssh://.",
                                  "Docker uses your ssh config and agent; drop --identity.")
        if self.tls_dir and (self.engine is Engine.PODMAN or not self.url.startswith("tcp://")):
            raise ValidationError(
                "--tls-dir is for docker and buildkit endpoints reached over tcp://.",
                "podman's remote API has no TLS of its own: reach it over ssh:// (or a tunnel) instead.")

    def serves(self, platform: Platform) -> bool:
        return any(platform.matches(own) for own in self.platforms)

    def describe(self) -> str:
        return f"{self.name} ({self.engine} at {self.url})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "url": self.url, "engine": str(self.engine),
                                "maxConcurrent": self.max_concurrent,
                                "platforms": [str(p) for p in self.platforms]}
        if self.identity:
            data["identity"] = self.identity
        if self.tls_dir:
            data["tlsDir"] = self.tls_dir
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        try:
            engine = Engine(data.get("engine", "podman"))
        except ValueError:
            raise ValidationError(f"Unknown engine {data.get('engine')!r} for build endpoint {data.get('name')!r}.",
                                  f"Use one of: {', '.join(Engine)}.") from None
        return cls(
            name=str(data["name"]), url=str(data["url"]), engine=engine,
            max_concurrent=int(data.get("maxConcurrent", 2)),
            platforms=tuple(Platform.parse(str(p), source="platform") for p in data["platforms"])
            if "platforms" in data else (DEFAULT_PLATFORM,),
            identity=data.get("identity"), tls_dir=data.get("tlsDir"),
        )

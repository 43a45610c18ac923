"""The builders on this machine by name (buildah, docker, podman), and which one `auto` picks.

Apart from base.py because it knows every builder module, and they all import base.py: with `select`
there, base.py would import its own subclasses (an import cycle).
"""

from __future__ import annotations

from collections.abc import Mapping

from acrtask.builders.base import Builder
from acrtask.builders.buildah import Buildah
from acrtask.builders.docker import Docker
from acrtask.builders.podman import Podman
from acrtask.errors import BuildError, ValidationError

BUILDER_NAMES = ("buildah", "docker", "podman")  # "auto" tries them in this order


def select(name: str, env: Mapping[str, str] | None = None) -> Builder:
    """The builder called `name`, or for "auto" the first installed of buildah, docker, podman.

    `env` is the environment the builder runs with (default: this process's, read at build time).
    """
    builders: dict[str, Builder] = {"buildah": Buildah(env), "docker": Docker(env), "podman": Podman(env)}
    key = name.strip().lower()
    if key == "auto":
        for builder in builders.values():
            if builder.available():
                return builder
        raise BuildError("No container builder found: none of buildah, docker or podman is on PATH.",
                         "Install buildah (apt-get install buildah), docker with buildx, or podman.")
    if key not in builders:
        raise ValidationError(f"Unknown builder {name!r}.", f"Use one of: auto, {', '.join(BUILDER_NAMES)}.")
    builder = builders[key]
    if not builder.available():
        raise BuildError(f"The builder {key} is not installed: `{key}` is not on PATH.",
                         f"Install {key}, or pass --builder auto to use whichever builder is installed.")
    return builder

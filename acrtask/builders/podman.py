"""Build with `podman build`, push each tag with `podman push --digestfile`.

podman builds with buildah's code, so the argument lists are buildah's (see buildah.py for the
flags and why), with verb `build`, `--pull=newer` (podman's default pulls only missing images) and,
with secret args, `--layers=false` (podman's default is `--layers`). Unlike buildah, the environment
is left alone: podman takes its storage driver and isolation from containers.conf / storage.conf
(or STORAGE_DRIVER, BUILDAH_ISOLATION, CONTAINERS_STORAGE_CONF when they are set).
Tested against real podman 4.3 (tests/integration/test_podman_real.py); podman as a remote build
endpoint is builders/remote.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from acrtask.builders import buildah
from acrtask.builders.base import BuildResult, BuildSpec, child_env, which

__all__ = ["Podman", "command"]


def command(spec: BuildSpec, workdir: Path, *, pull_insecure: bool) -> list[list[str]]:
    """`podman build ...`, then one `podman push --digestfile` per image when `spec.push`."""
    return buildah.command(spec, workdir, pull_insecure=pull_insecure, program="podman")


class Podman:
    name = "podman"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env  # None: this process's environment, read at build time

    def available(self) -> bool:
        return which("podman", self._env) is not None

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult:
        env = child_env(os.environ if self._env is None else self._env, spec)
        return buildah.build_and_push(self.name, spec, env, log, cancel)

"""Push images and run containers for push and cmd steps, with the host's buildah, docker or podman.

Build steps go through the builders (acrtask.builders); this module adds what a multi-step task needs
besides: `push` one locally built image and report its digest, and `run` a command in a container.

- buildah: `buildah from --name N --pull=missing|always IMAGE`, the image's ENTRYPOINT/CMD read with
  `buildah inspect`, then `buildah run ... N -- ARGV`, then `buildah rm N` (unless the step keeps it).
  `buildah run` has no entrypoint of its own, so the command line is made here the way `docker run`
  makes it: entryPoint (or the image's ENTRYPOINT) followed by the step's arguments (or the image's CMD).
- docker and podman: `docker run [--rm] --name N --pull=... IMAGE ARGS`.
Every command goes through process.py: own process group, stopped on timeout or cancel.
Environment values are passed as `-e NAME=VALUE` (buildah has no way to take them from its own
environment); the logged command line has secret values replaced by `***`.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from acrtask import process
from acrtask.builders import buildah, docker
from acrtask.errors import BuildError

Log = Callable[[str], None]
CLEANUP_TIMEOUT = 60.0  # for removing a container after its step, even one that was canceled


@dataclass(frozen=True)
class Container:
    """A cmd step's container: what to run and how."""

    name: str
    image: str
    args: tuple[str, ...] = ()
    entry_point: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    mounts: tuple[tuple[str, str, bool], ...] = ()  # host path, container path, read-only
    pull_always: bool = False
    insecure: bool = False  # pull over plain HTTP / without TLS verification
    keep: bool = False


class StepEngine(Protocol):
    name: str

    def push(self, image: str, insecure: bool, log: Log, cancel: threading.Event, deadline: float | None,
             secrets: Sequence[str] = ()) -> str: ...

    def run(self, container: Container, log: Log, cancel: threading.Event, deadline: float | None,
            secrets: Sequence[str] = ()) -> int: ...

    def remove_image(self, image: str, log: Log) -> None: ...


def command_line(config: Mapping[str, Any], entry_point: str | None, args: Sequence[str]) -> list[str]:
    """What `docker run` runs: the entrypoint (the step's, else the image's), then the step's arguments,
    else the image's CMD. An entryPoint given by the step drops the image's CMD, as --entrypoint does."""
    if entry_point is not None:
        return [entry_point, *args]
    image_entry = list(config.get("Entrypoint") or [])
    return image_entry + (list(args) if args else list(config.get("Cmd") or []))


def push_argv(program: str, image: str, insecure: bool, digest_file: Path) -> list[str]:
    if program == "docker":
        return ["docker", "push", image]
    argv = [program, "push", "--format", "oci", "--digestfile", str(digest_file)]
    if insecure:
        argv.append("--tls-verify=false")
    return [*argv, image, f"docker://{image}"]


def from_argv(container: Container) -> list[str]:
    argv = ["buildah", "from", "--name", container.name, f"--pull={'always' if container.pull_always else 'missing'}"]
    if container.insecure:
        argv.append("--tls-verify=false")
    return [*argv, container.image]


def _options(container: Container, workdir_flag: str) -> list[str]:
    argv: list[str] = []
    if container.workdir:
        argv += [workdir_flag, container.workdir]
    if container.user:
        argv += ["--user", container.user]
    for name, value in container.env:
        argv += ["-e", f"{name}={value}"]
    for host, path, read_only in container.mounts:
        argv += ["-v", f"{host}:{path}" + (":ro" if read_only else "")]
    return argv


def buildah_run_argv(container: Container, command: Sequence[str]) -> list[str]:
    return ["buildah", "run", *_options(container, "--workingdir"), container.name, "--", *command]


def run_argv(program: str, container: Container) -> list[str]:
    """`docker run` / `podman run` for a container, in the foreground."""
    argv = [program, "run", "--name", container.name, f"--pull={'always' if container.pull_always else 'missing'}"]
    if not container.keep:
        argv.append("--rm")
    if program == "podman" and container.insecure:
        argv.append("--tls-verify=false")
    argv += _options(container, "-w")
    if container.entry_point is not None:
        argv += ["--entrypoint", container.entry_point]
    return [*argv, container.image, *container.args]


class _Commands:
    """Runs one engine's commands: logged (secrets hidden), stopped on timeout or cancel."""

    def __init__(self, program: str, env: Mapping[str, str]) -> None:
        self.program = program
        self.env = env

    def run(self, argv: Sequence[str], log: Log, cancel: threading.Event, deadline: float | None,
            secrets: Sequence[str] = (), quiet: bool = False) -> int:
        if not quiet:
            log(process.LineRedactor(secrets, log).redact("$ " + shlex.join(argv)))
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise process.BuildTimeoutError(f"`{shlex.join(argv[:2])}` was not started: the step is out of time.",
                                            "Raise the step's timeout.")
        return process.run(argv, self.env, log, cancel, timeout, secrets)

    def check(self, argv: Sequence[str], what: str, log: Log, cancel: threading.Event, deadline: float | None,
              secrets: Sequence[str] = ()) -> list[str]:
        lines: list[str] = []

        def both(line: str) -> None:
            lines.append(line)
            log(line)

        code = self.run(argv, both, cancel, deadline, secrets)
        if code != 0:
            last = next((line for line in reversed(lines) if line.strip()), "no output")
            raise BuildError(f"{self.program}: {what} failed (exit code {code}): {last}",
                             "Read the step's log above for the cause.")
        return lines

    def cleanup(self, argv: Sequence[str], log: Log) -> None:
        """A removal that must run even after a cancel: its own event, a bounded time, failures logged."""
        try:
            code = process.run(argv, self.env, lambda line: None, threading.Event(), CLEANUP_TIMEOUT)
        except BuildError as exc:
            log(f"warning: {shlex.join(argv[:3])} did not finish: {exc}")
            return
        if code != 0:
            log(f"warning: `{shlex.join(argv)}` failed (exit code {code}); remove it by hand.")


class BuildahEngine:
    name = "buildah"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.commands = _Commands("buildah", buildah.default_env(os.environ if env is None else env))

    def push(self, image: str, insecure: bool, log: Log, cancel: threading.Event, deadline: float | None,
             secrets: Sequence[str] = ()) -> str:
        with tempfile.TemporaryDirectory(prefix="acrtask-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            self.commands.check(push_argv("buildah", image, insecure, digest_file), f"the push of {image}", log,
                                cancel, deadline, secrets)
            return buildah.read_digest(digest_file, image, "buildah")

    def run(self, container: Container, log: Log, cancel: threading.Event, deadline: float | None,
            secrets: Sequence[str] = ()) -> int:
        self.commands.check(from_argv(container), f"getting {container.image}", log, cancel, deadline, secrets)
        try:
            lines: list[str] = []
            code = self.commands.run(["buildah", "inspect", "--type", "container", container.name], lines.append,
                                     cancel, deadline, quiet=True)
            config = _container_config(lines, code, container.image)
            command = command_line(config, container.entry_point, container.args)
            if not command:
                raise BuildError(f"The image {container.image} has no command, and the step gives none.",
                                 "Give the command after the image, or an entryPoint.")
            return self.commands.run(buildah_run_argv(container, command), log, cancel, deadline, secrets)
        finally:
            if container.keep:
                log(f"Kept the container {container.name} (keep: true); remove it with `buildah rm {container.name}`.")
            else:
                self.commands.cleanup(["buildah", "rm", container.name], log)

    def remove_image(self, image: str, log: Log) -> None:
        self.commands.cleanup(["buildah", "rmi", image], log)


def _container_config(lines: list[str], code: int, image: str) -> Mapping[str, Any]:
    try:
        if code != 0:
            raise ValueError(code)
        config = json.loads("\n".join(lines))["OCIv1"].get("config") or {}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BuildError(f"buildah could not describe the container of {image}.",
                         "Check that buildah works: `buildah inspect --type container NAME`.") from None
    return config if isinstance(config, Mapping) else {}


class CliEngine:
    """docker or podman: `push` and `run` are their own commands."""

    def __init__(self, program: str, env: Mapping[str, str] | None = None) -> None:
        self.name = program
        self.commands = _Commands(program, dict(os.environ if env is None else env))

    def push(self, image: str, insecure: bool, log: Log, cancel: threading.Event, deadline: float | None,
             secrets: Sequence[str] = ()) -> str:
        with tempfile.TemporaryDirectory(prefix="acrtask-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            lines = self.commands.check(push_argv(self.name, image, insecure, digest_file), f"the push of {image}",
                                        log, cancel, deadline, secrets)
            if self.name != "docker":
                return buildah.read_digest(digest_file, image, self.name)
        digest = docker.push_output_digest(lines)
        if digest is None:
            raise BuildError(f"docker pushed {image} but its output named no digest.", "Check the push log.")
        return digest

    def run(self, container: Container, log: Log, cancel: threading.Event, deadline: float | None,
            secrets: Sequence[str] = ()) -> int:
        finished = False
        try:
            code = self.commands.run(run_argv(self.name, container), log, cancel, deadline, secrets)
            finished = True
            return code
        finally:
            if not container.keep and not finished:  # --rm does not act when the client is killed
                self.commands.cleanup([self.name, "rm", "-f", container.name], log)

    def remove_image(self, image: str, log: Log) -> None:
        self.commands.cleanup([self.name, "rmi", image], log)


def for_builder(name: str, env: Mapping[str, str] | None = None) -> StepEngine:
    """The engine that goes with a builder (buildah, docker or podman), with the same environment."""
    if name == "buildah":
        return BuildahEngine(env)
    if name in ("docker", "podman"):
        return CliEngine(name, env)
    raise BuildError(f"Multi-step tasks cannot run with the builder {name!r}.",
                     "Use --builder buildah, docker or podman.")

"""Build with `buildah bud`, push each tag with `buildah push --digestfile`.

Flags worth knowing (buildah 1.28+):
- `--format oci`: only OCI manifests carry `--annotation`s (Docker v2s2 has no annotations field);
  the push repeats `--format oci` so the manifest type is not left to buildah's fallbacks.
- Secret args: buildah records every build arg a RUN sees, with its value, in the history's
  `created_by` (`|1 TOKEN=value /bin/sh -c ...`). So with secret args the build gets
  `--omit-history`, and no `--layers`: without history buildah never finds a cache hit, and the
  intermediate images would only fill the (vfs) storage.
- `--tls-verify=false` on `bud` covers every registry the build pulls from, so it is passed only
  when a base image is on an insecure or loopback registry (see base.pull_insecure); pushes get it
  per image.
- `--layers` needs `--force-rm`: otherwise a failed or stopped RUN leaves its working container
  behind (`buildah containers`), a full copy of the root filesystem on vfs. buildah refuses
  `--force-rm` without `--layers` or `--no-cache`; without `--layers` it cleans up by itself.
- `--pull` keeps buildah's default (pull when the registry has a newer image): a moved base tag is
  picked up, an unchanged one is not downloaded again.
- Root in a container needs STORAGE_DRIVER=vfs and BUILDAH_ISOLATION=chroot; both are set unless
  the environment already chooses a driver (env or storage.conf) or an isolation.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from acrtask.builders.base import (
    BuildResult,
    BuildSpec,
    Steps,
    build_arg_flags,
    child_env,
    is_insecure,
    pairs,
    pull_insecure,
    which,
)
from acrtask.errors import BuildError

__all__ = ["Buildah", "build_and_push", "command", "default_env", "digest_file", "read_digest"]

_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def command(spec: BuildSpec, workdir: Path, *, pull_insecure: bool, program: str = "buildah",
            remote: Sequence[str] = (), authfile: Path | None = None) -> list[list[str]]:
    """The argument lists of a build: `bud`, then one `push` per image when `spec.push`.

    `program="podman"` gives podman's (same flags, verb `build`): podman builds with buildah's code.
    `remote` (podman: `--remote --url URL`) goes before the verb; a remote push gets no --digestfile
    (podman 4's remote client neither writes nor forwards it). `authfile` is read by the client.
    """
    verb = "bud" if program == "buildah" else "build"  # `bud` also works on buildah before 1.24
    bud = [program, *remote, verb, "--format", "oci", "--platform", str(spec.platform), "-f", str(spec.dockerfile)]
    if program == "podman":
        bud.append("--pull=newer")  # podman's default is "missing": a moved base would not be pulled
    if spec.secret_args:
        bud.append("--omit-history")  # history would hold the secret values; see the module doc
        if program == "podman":
            bud.append("--layers=false")  # podman's default is --layers: a cached step would bring history back
    else:
        # --force-rm: with --layers a failed step leaves its working container (a rootfs copy on vfs).
        bud += ["--layers", "--force-rm"]
    if spec.no_cache:
        bud.append("--no-cache")
    if pull_insecure:
        bud.append("--tls-verify=false")
    auth = ["--authfile", str(authfile)] if authfile is not None else []
    bud += auth
    if spec.target:
        bud += ["--target", spec.target]
    for image in spec.images:
        bud += ["-t", image]
    bud += build_arg_flags(spec)
    bud += pairs("--annotation", spec.annotations)
    bud += pairs("--label", spec.labels)
    bud.append(str(spec.context_dir))
    commands = [bud]
    if spec.push:
        for index, image in enumerate(spec.images):
            push = [program, *remote, "push", "--format", "oci", *auth]
            if not remote:
                push += ["--digestfile", str(digest_file(workdir, index))]
            if is_insecure(image, spec.insecure_registries):
                push.append("--tls-verify=false")
            commands.append([*push, image, f"docker://{image}"])
    return commands


def digest_file(workdir: Path, index: int) -> Path:
    return workdir / f"digest-{index}"


def read_digest(path: Path, image: str, builder: str) -> str:
    """The digest a push wrote to `path`."""
    try:
        digest = path.read_text(encoding="utf-8").strip()
    except OSError:
        digest = ""
    if not _DIGEST.fullmatch(digest):
        raise BuildError(f"{builder} pushed {image} but did not report its digest.",
                         f"Check that {builder} is up to date (it needs --digestfile).")
    return digest


def _storage_conf(env: Mapping[str, str]) -> Path | None:
    """The storage.conf containers/storage would read with `env`, if any exists."""
    explicit = env.get("CONTAINERS_STORAGE_CONF")
    if explicit:
        return Path(explicit)
    candidates = []
    if os.geteuid() != 0:
        config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
        candidates.append(Path(config_home) / "containers" / "storage.conf")
    candidates += [Path("/etc/containers/storage.conf"), Path("/usr/share/containers/storage.conf")]
    return next((path for path in candidates if path.is_file()), None)


def _driver_configured(env: Mapping[str, str]) -> bool:
    if env.get("STORAGE_DRIVER"):
        return True
    path = _storage_conf(env)
    if path is None:
        return False
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, tomllib.TOMLDecodeError):
        return False  # buildah will report the broken file itself
    storage = config.get("storage")
    return isinstance(storage, dict) and bool(storage.get("driver"))


def default_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus vfs storage and chroot isolation, unless `base` already chooses them."""
    env = dict(base)
    if not _driver_configured(env):
        env["STORAGE_DRIVER"] = "vfs"  # overlay needs kernel support that containers rarely give
    env.setdefault("BUILDAH_ISOLATION", "chroot")  # oci isolation needs namespaces a container lacks
    return env


class Buildah:
    name = "buildah"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env  # None: this process's environment, read at build time

    def available(self) -> bool:
        return which("buildah", self._env) is not None

    def environment(self, spec: BuildSpec) -> dict[str, str]:
        return child_env(default_env(os.environ if self._env is None else self._env), spec)

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult:
        return build_and_push(self.name, spec, self.environment(spec), log, cancel)


def build_and_push(program: str, spec: BuildSpec, env: Mapping[str, str], log: Callable[[str], None],
                   cancel: threading.Event, *, remote: Sequence[str] = (), authfile: Path | None = None,
                   digest_of: Callable[[str], str] | None = None) -> BuildResult:
    """Run `command(spec)` with `program` (buildah or podman) and collect the pushed digests.

    A remote podman (`remote` set) writes no digest file: `digest_of(image)` asks the registry instead.
    """
    if remote and digest_of is None:
        raise ValueError("a remote build needs digest_of")
    steps = Steps(program, spec, env, log, cancel)
    if spec.secret_args:
        steps.log("note: secret build args are set, so the image is built without history and layer "
                  "cache; their values stay out of the image.")
    with tempfile.TemporaryDirectory(prefix=f"acrtask-{program}-") as tmp:
        workdir = Path(tmp)
        build, *pushes = command(spec, workdir, pull_insecure=pull_insecure(spec), program=program,
                                 remote=remote, authfile=authfile)
        steps.run(build, "the build")
        pushed: dict[str, str] = {}
        for index, push in enumerate(pushes):
            image = spec.images[index]
            steps.run(push, f"the push of {image}")
            if digest_of is not None and remote:
                pushed[image] = digest_of(image)
            else:
                pushed[image] = read_digest(digest_file(workdir, index), image, program)
    return BuildResult(pushed)

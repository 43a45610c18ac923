"""Build with `docker buildx build --push --metadata-file`, or without buildx `docker build` + `docker push`.

With buildx (0.12+ for --annotation):
- `--provenance=false`: otherwise buildx pushes an index with an attestation manifest, and the tag
  would resolve to that index instead of the image manifest carrying the annotations.
- `--annotation manifest:k=v` puts the annotations on the pushed image manifest.
- `--metadata-file F`: the pushed digest is `containerimage.digest` there (one manifest, all tags).
- An insecure or loopback push target turns `--push` into
  `--output type=image,push=true,registry.insecure=true` (the tags still come from `-t`).
  Pulling bases from an insecure registry is up to the builder's own config (daemon.json
  `insecure-registries`, buildkitd.toml): there is no per-build flag for it.
Without buildx (the legacy builder): no annotations (a warning says so), each tag is pushed with
`docker push`, and its digest read from the push output (`<tag>: digest: sha256:... size: N`).

Docker writes build-arg values, secret ones included, into the image history (`RUN |1 NAME=value
...`) and has no flag to omit it; a warning says so. buildah and podman avoid it (--omit-history).
No Docker daemon or buildx runs in this project's tests: the argument lists, digest parsing and
availability are tested, and the legacy path (`docker build` + `docker push`) runs for real against
the Docker-compatible API of a podman service when a docker CLI is on PATH
(tests/integration/test_podman_real.py).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from acrtask import process
from acrtask.builders.base import (
    BuildResult,
    BuildSpec,
    Steps,
    build_arg_flags,
    builder_env,
    child_env,
    is_insecure,
    pairs,
    which,
)
from acrtask.errors import BuildError

__all__ = ["Docker", "command", "metadata_digest", "push_output_digest"]

_PUSH_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


def command(spec: BuildSpec, metadata_file: Path, *, buildx: bool, load: bool = True) -> list[list[str]]:
    """The argument lists of a build: one `buildx build`, or `build` then one `push` per image.

    `load=False` keeps a pushless buildx build in the builder's cache: a remote BuildKit has no
    Docker engine here to load into.
    """
    # --pull: docker prefers a cached FROM image otherwise, and a moved base would be built on stale.
    common = ["--platform", str(spec.platform), "-f", str(spec.dockerfile), "--pull"]
    if spec.no_cache:
        common.append("--no-cache")
    if spec.target:
        common += ["--target", spec.target]
    for image in spec.images:
        common += ["-t", image]
    common += build_arg_flags(spec)
    common += pairs("--label", spec.labels)
    if not buildx:
        build = ["docker", "build", *common, str(spec.context_dir)]
        pushes = [["docker", "push", image] for image in spec.images] if spec.push else []
        return [build, *pushes]

    argv = ["docker", "buildx", "build", *common, "--provenance=false"]
    if spec.push:
        argv += pairs("--annotation", spec.annotations, prefix="manifest:")
        if any(is_insecure(image, spec.insecure_registries) for image in spec.images):
            argv += ["--output", "type=image,push=true,registry.insecure=true"]
        else:
            argv.append("--push")
        argv += ["--metadata-file", str(metadata_file)]
    elif load:
        argv.append("--load")  # the docker-container driver keeps nothing otherwise
    argv.append(str(spec.context_dir))
    return [argv]


def metadata_digest(path: Path) -> str | None:
    """`containerimage.digest` from a buildx --metadata-file, if present."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = data.get("containerimage.digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) and digest.startswith("sha256:") else None


def push_output_digest(lines: list[str]) -> str | None:
    """The digest `docker push` reports on its last `<tag>: digest: sha256:... size: N` line."""
    for line in reversed(lines):
        match = _PUSH_DIGEST.search(line)
        if match:
            return match.group(1)
    return None


class Docker:
    name = "docker"

    def __init__(self, env: Mapping[str, str] | None = None, *, load: bool = True) -> None:
        self._env = env  # None: this process's environment, read at build time
        self._buildx: bool | None = None
        self._load = load

    def _base_env(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    def available(self) -> bool:
        return which("docker", self._env) is not None

    def has_buildx(self) -> bool:
        """Whether `docker buildx` works (asked once; a missing plugin exits non-zero)."""
        if self._buildx is None:
            code, _ = process.capture(["docker", "buildx", "version"], builder_env(self._base_env()), timeout=15.0)
            self._buildx = code == 0
        return self._buildx

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult:
        buildx = self.has_buildx()
        steps = Steps(self.name, spec, child_env(self._base_env(), spec), log, cancel)
        if spec.secret_args:
            steps.log("warning: docker writes build-arg values into the image history, secret args included; "
                      "use buildah or podman, or RUN --mount=type=secret, to keep them out of the image.")
        if not buildx and spec.annotations and spec.push:
            steps.log("warning: docker without buildx cannot set manifest annotations; install docker-buildx "
                      "to record the base image in the pushed manifest.")
        with tempfile.TemporaryDirectory(prefix="acrtask-docker-") as tmp:
            metadata = Path(tmp) / "metadata.json"
            build, *pushes = command(spec, metadata, buildx=buildx, load=self._load)
            steps.run(build, "the build")
            if not spec.push:
                return BuildResult({})
            if buildx:
                digest = metadata_digest(metadata)
                if digest is None:
                    raise BuildError("docker buildx pushed the image but wrote no digest to its metadata file.",
                                     "Update docker buildx (0.12 or later).")
                return BuildResult(dict.fromkeys(spec.images, digest))
            pushed: dict[str, str] = {}
            for index, push in enumerate(pushes):
                image = spec.images[index]
                steps.run(push, f"the push of {image}")
                found = push_output_digest(list(steps.tail.lines))
                if found is None:
                    raise BuildError(f"docker pushed {image} but its output named no digest.",
                                     "Check the push log; update docker if it is very old.")
                pushed[image] = found
            return BuildResult(pushed)

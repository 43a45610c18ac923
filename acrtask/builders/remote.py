"""Builds on a build endpoint, through the engine's own client and remote protocol.

- podman: `podman --remote --url URL [--identity KEY] build|push ...`, the flags of buildah.py.
  The client tars the context and streams it to the service. podman 4's remote client writes no
  `--digestfile`, so a pushed digest is asked of the registry right after the push.
- docker: the Docker API with `DOCKER_HOST=URL` (plus DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for a
  TLS tcp:// endpoint), the flags of docker.py. podman's service serves this API too (legacy
  builder; it has no BuildKit session endpoint for buildx).
- buildkit: a BuildKit daemon through buildx's `remote` driver: acrtask creates a buildx builder
  `acrtask-NAME-HASH` (`docker buildx create --driver remote URL`) in its own BUILDX_CONFIG and
  selects it with BUILDX_BUILDER. Written from buildx's documentation; no BuildKit runs in this
  project's tests, so only its argument lists are tested.

Credentials go through a private auth file (authfile.py). A failed build is told apart from a lost
endpoint by asking the endpoint afterwards: if it does not answer, the run either never started
there (EndpointUnavailableError: the pool places it elsewhere) or lost its engine mid-way
(EndpointLostError: the run fails, naming the endpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from acrtask import process
from acrtask.builders import buildah
from acrtask.builders.authfile import AuthFiles, CredentialLookup, private_auth
from acrtask.builders.base import BuildResult, BuildSpec, base_images, builder_env, child_env, which
from acrtask.builders.docker import Docker
from acrtask.builders.endpoint import Endpoint, Engine
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError, ValidationError
from acrtask.files import exclusive_lock
from acrtask.platform import Platform
from acrtask.reference import ImageRef

__all__ = [
    "EndpointLostError",
    "EndpointUnavailableError",
    "Probe",
    "RemoteEngine",
    "buildx_builder",
    "buildx_create_command",
    "engine_env",
    "parse_probe",
    "podman_remote_args",
    "probe_command",
]

PROBE_TIMEOUT = 15.0
# What a client prints once the engine runs the Dockerfile: podman/buildah and docker's legacy
# builder number their steps, BuildKit numbers its vertices.
_STARTED = re.compile(r"^(?:STEP|Step) \d+/\d+\b|^#\d+ ")
# Variables that would point the engine clients somewhere else than the endpoint, or hand them
# credentials other than the build's own.
_REDIRECTS = ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINER_SSHKEY", "DOCKER_HOST", "DOCKER_CONTEXT",
              "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_AUTH_CONFIG", "BUILDX_BUILDER",
              "BUILDX_CONFIG", "REGISTRY_AUTH_FILE")
_LOST_HINT = ("It is marked down; watch runs a triggered run again once elsewhere. Check the endpoint with "
              "'acrtask builder check'.")


class EndpointUnavailableError(BuildError):
    """The endpoint did not answer before the build started there: the build can go elsewhere."""

    def __init__(self, endpoint: Endpoint, detail: str) -> None:
        super().__init__(f"The build endpoint {endpoint.describe()} did not answer: {detail}",
                         "Check it with 'acrtask builder check'.")
        self.endpoint = endpoint
        self.detail = detail


class EndpointLostError(BuildError):
    """The endpoint stopped answering while it ran the build."""

    def __init__(self, endpoint: Endpoint, detail: str, failure: str) -> None:
        super().__init__(f"The build endpoint {endpoint.describe()} stopped answering during the build "
                         f"({detail}): {failure}", _LOST_HINT)
        self.endpoint = endpoint
        self.detail = detail


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str  # the engine's version, or why it did not answer
    platforms: tuple[Platform, ...] = ()


# -- argument lists and environments (pure) --------------------------------------------------------------


def podman_remote_args(endpoint: Endpoint) -> list[str]:
    args = ["--remote", "--url", endpoint.url]
    if endpoint.identity:
        args += ["--identity", endpoint.identity]
    return args


def buildx_builder(endpoint: Endpoint) -> str:
    """acrtask's buildx builder for `endpoint`: a new one when its URL or certificates change."""
    digest = hashlib.sha256(f"{endpoint.url}\0{endpoint.tls_dir or ''}".encode()).hexdigest()[:8]
    return f"acrtask-{endpoint.name}-{digest}"


def buildx_create_command(endpoint: Endpoint) -> list[str]:
    argv = ["docker", "buildx", "create", "--name", buildx_builder(endpoint), "--driver", "remote"]
    if endpoint.tls_dir:
        tls = Path(endpoint.tls_dir)
        argv += ["--driver-opt", f"cacert={tls / 'ca.pem'},cert={tls / 'cert.pem'},key={tls / 'key.pem'}"]
    return [*argv, endpoint.url]


def engine_env(endpoint: Endpoint, base: Mapping[str, str], *, docker_config: Path | None,
               buildx_config: Path) -> dict[str, str]:
    """What a builder may have of `base` (base.builder_env), without anything that redirects the clients,
    plus the ssh agent (for ssh:// endpoints) and what points them at `endpoint`."""
    env = {key: value for key, value in builder_env(base).items() if key not in _REDIRECTS}
    if base.get("SSH_AUTH_SOCK"):
        env["SSH_AUTH_SOCK"] = base["SSH_AUTH_SOCK"]
    if docker_config is not None:
        env["DOCKER_CONFIG"] = str(docker_config)
    if endpoint.engine is Engine.DOCKER:
        env["DOCKER_HOST"] = endpoint.url
        if endpoint.tls_dir:
            env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=endpoint.tls_dir)
    elif endpoint.engine is Engine.BUILDKIT:
        env.update(BUILDX_CONFIG=str(buildx_config), BUILDX_BUILDER=buildx_builder(endpoint))
    return env


def probe_command(endpoint: Endpoint) -> list[str]:
    if endpoint.engine is Engine.PODMAN:
        return ["podman", *podman_remote_args(endpoint), "version", "--format", "json"]
    if endpoint.engine is Engine.DOCKER:
        return ["docker", "version", "--format", "{{json .Server}}"]
    return ["docker", "buildx", "inspect", "--bootstrap", buildx_builder(endpoint)]


def parse_probe(endpoint: Endpoint, code: int, output: str) -> Probe:
    """What `probe_command` said: the engine's version and platforms, or its last error line."""
    if code != 0:
        return Probe(False, _last_error(output) or f"exit code {code}")
    try:
        if endpoint.engine is Engine.BUILDKIT:
            found = re.search(r"^Platforms:\s*(.+)$", output, re.MULTILINE)
            version = re.search(r"^BuildKit(?: version)?:\s*(\S+)", output, re.MULTILINE | re.IGNORECASE)
            names = [p.strip() for p in found.group(1).split(",")] if found else []
            platforms = tuple(Platform.parse(n.rstrip("*"), source="platform") for n in names if n)
            return Probe(True, f"BuildKit {version.group(1) if version else ''}".strip(), platforms)
        document = json.loads(output[output.index("{"):])
        if endpoint.engine is Engine.PODMAN:
            server = document["Server"]
            return Probe(True, f"podman {server['Version']}",
                         (Platform.parse(server["OsArch"], source="platform"),))
        return Probe(True, f"{_docker_engine_name(document)} {document['Version']}",
                     (Platform.parse(f"{document['Os']}/{document['Arch']}", source="platform"),))
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
        return Probe(False, "the engine answered, but not in a shape acrtask understands")


def _docker_engine_name(server: Mapping[str, object]) -> str:
    components = server.get("Components")
    if isinstance(components, list) and components and isinstance(components[0], dict):
        return str(components[0].get("Name", "Docker Engine"))
    return "Docker Engine"


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error"):
            return line.split(":", 1)[1].strip() if ":" in line else line
    return lines[-1] if lines else ""


def _registries(spec: BuildSpec) -> set[str]:
    """The registries a build pulls from and pushes to: the only ones its auth file holds."""
    refs = [ImageRef.parse(image) for image in spec.images] + (base_images(spec) or [])
    return {ref.registry for ref in refs}


# -- running -----------------------------------------------------------------------------------------------


class RemoteEngine:
    """Builds on one endpoint. `available`, `build` as a Builder; `probe` asks whether it answers."""

    def __init__(self, endpoint: Endpoint, *, env: Mapping[str, str] | None, credentials: CredentialLookup,
                 digest_of: Callable[[str], str], buildx_config: Path) -> None:
        self.endpoint = endpoint
        self.name = f"{endpoint.engine}@{endpoint.name}"
        self._env = env  # None: this process's environment, read at build time
        self._credentials = credentials
        self._digest_of = digest_of
        self._buildx_config = buildx_config

    def _base(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    def _docker_config(self) -> Path:
        """The user's docker config folder (its cli-plugins hold buildx)."""
        base = self._base()
        explicit = base.get("DOCKER_CONFIG")
        return Path(explicit) if explicit else Path(base.get("HOME") or Path.home()) / ".docker"

    def available(self) -> bool:
        return which("podman" if self.endpoint.engine is Engine.PODMAN else "docker", self._env) is not None

    def probe(self) -> Probe:
        env = engine_env(self.endpoint, self._base(), docker_config=None, buildx_config=self._buildx_config)
        if self.endpoint.engine is Engine.BUILDKIT:
            problem = self._ensure_buildx_builder(env)
            if problem:
                return Probe(False, problem)
        code, output = process.capture(probe_command(self.endpoint), env, timeout=PROBE_TIMEOUT)
        if code == 127 and not self.available():
            return Probe(False, f"`{probe_command(self.endpoint)[0]}` is not installed on this machine")
        return parse_probe(self.endpoint, code, output)

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult:
        started = threading.Event()

        def watch(line: str) -> None:
            if _STARTED.match(line.lstrip()):
                started.set()
            log(line)

        try:
            with private_auth(_registries(spec), self._credentials, self._docker_config()) as auth:
                redact = process.LineRedactor(auth.secrets(), lambda line: None).redact
                return self._build(spec, lambda line: watch(redact(line)), cancel, auth)
        except (BuildTimeoutError, BuildCanceledError, EndpointLostError, EndpointUnavailableError):
            raise
        except BuildError as exc:
            probe = self.probe()
            if probe.ok:
                raise  # the engine answers: the build itself failed
            if started.is_set():
                raise EndpointLostError(self.endpoint, probe.detail, exc.message) from None
            raise EndpointUnavailableError(self.endpoint, probe.detail) from None

    def _build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event,
               auth: AuthFiles) -> BuildResult:
        if self.endpoint.engine is Engine.PODMAN:
            env = child_env(engine_env(self.endpoint, self._base(), docker_config=None,
                                       buildx_config=self._buildx_config), spec)
            return buildah.build_and_push("podman", spec, env, log, cancel, remote=podman_remote_args(self.endpoint),
                                          authfile=auth.file, digest_of=self._digest_of)
        env = engine_env(self.endpoint, self._base(), docker_config=auth.folder, buildx_config=self._buildx_config)
        if self.endpoint.engine is Engine.BUILDKIT:
            problem = self._ensure_buildx_builder(env)
            if problem:
                raise BuildError(f"Cannot set up the buildx builder for {self.endpoint.describe()}: {problem}",
                                 "Check that docker buildx (0.12 or later) is installed.")
        return Docker(env, load=self.endpoint.engine is not Engine.BUILDKIT).build(spec, log, cancel)

    def _ensure_buildx_builder(self, env: Mapping[str, str]) -> str | None:
        """Create acrtask's buildx builder for the endpoint once (local metadata only); the problem, if any."""
        name = buildx_builder(self.endpoint)
        if not Docker(env).has_buildx():
            return ("docker buildx is not installed on this machine (a buildkit endpoint is reached through "
                    "docker's buildx plugin, 0.12 or later)")
        self._buildx_config.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive_lock(self._buildx_config / f"{name}.lock"):
            code, _ = process.capture(["docker", "buildx", "inspect", name], env, timeout=PROBE_TIMEOUT)
            if code == 0:
                return None
            code, output = process.capture(buildx_create_command(self.endpoint), env, timeout=PROBE_TIMEOUT)
            return None if code == 0 else (_last_error(output) or f"exit code {code}")

"""Real podman builds against a real local registry: podman on this machine (like buildah's tests), podman
as a remote endpoint (`podman --remote`), and the Docker API that podman's service also serves.

podman here keeps its own storage (not the buildah tests'), and a registries.conf without insecure
entries: plain-HTTP pulls and pushes only work through the --tls-verify flags acrtask chose.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acrtask.builders.endpoint import Endpoint, Engine
from acrtask.builders.podman import Podman
from acrtask.builders.remote import EndpointUnavailableError, RemoteEngine
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError
from acrtask.media import OCI_MANIFEST
from acrtask.reference import ImageRef
from acrtask.registry import resolve_sync
from acrtask.registry.credentials import DockerCredentials
from acrtask.runner import BASE_DIGEST_ANNOTATION, BASE_NAME_ANNOTATION
from tests.support import ALICE, INSTALL_HINT, LocalRegistry, fetch_manifest, head_digest, push_base_image
from tests.support.builds import SECRET, spec_of
from tests.support.images import buildah_env as storage_env
from tests.support.podman import PodmanService
from tests.support.procs import wait_gone, zombie_children

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """podman's own storage for this module (vfs, chroot), and a registries.conf with nothing insecure."""
    root = tmp_path_factory.mktemp("podman-storage")
    env = storage_env(root)
    (root / "registries.conf").write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
    return env


@pytest.fixture
def base(registry: LocalRegistry, buildah_env: dict[str, str]) -> tuple[str, str]:
    ref = f"{registry.host}/base/busybox:1.0"
    return ref, push_base_image(registry.host, "base/busybox:1.0", "base-v1", env=buildah_env)


def config_blob(registry: LocalRegistry, repo: str, manifest: dict, auth: tuple[str, str] | None = None) -> str:
    with httpx.Client(timeout=10.0, trust_env=False, auth=auth) as client:
        return client.get(f"{registry.url}/v2/{repo}/blobs/{manifest['config']['digest']}").text


# -- podman on this machine ---------------------------------------------------------------------------------


def test_podman_pushes_two_tags_with_annotations_and_keeps_the_secret_out(
        registry: LocalRegistry, base: tuple[str, str], podman_env: dict[str, str], tmp_path: Path) -> None:
    base_ref, base_digest = base
    dockerfile = (f"FROM {base_ref}\nARG GREETING\nARG TOKEN\n"
                  'RUN test -n "$TOKEN" && echo "greeting=$GREETING token=$TOKEN" && echo "$GREETING" > /greeting\n')
    images = (f"{registry.host}/app/pod:1.0", f"{registry.host}/app/pod:run-ca1")
    spec = spec_of(tmp_path, dockerfile, images, build_args={"GREETING": "hello"}, secret_args={"TOKEN": SECRET},
                     annotations={BASE_NAME_ANNOTATION: base_ref, BASE_DIGEST_ANNOTATION: base_digest}, timeout=180.0)
    lines: list[str] = []
    result = Podman(env=podman_env).build(spec, lines.append, threading.Event())

    assert SECRET not in "\n".join(lines)
    assert "greeting=hello token=***" in lines
    assert result.pushed == {image: head_digest(registry.host, "app/pod", image.rsplit(":", 1)[1]) for image in images}
    manifest = fetch_manifest(registry.host, "app/pod", "1.0")
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"][BASE_NAME_ANNOTATION] == base_ref
    assert manifest["annotations"][BASE_DIGEST_ANNOTATION] == base_digest
    config = config_blob(registry, "app/pod", manifest)
    assert SECRET not in config and "greeting=" not in config  # no history: podman records ARG values there


def test_podman_failing_step_raises_its_own_error_text(
        registry: LocalRegistry, base: tuple[str, str], podman_env: dict[str, str], tmp_path: Path) -> None:
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN echo about to fail && exit 3\n", (f"{registry.host}/app/bad:1",))
    lines: list[str] = []
    with pytest.raises(BuildError) as caught:
        Podman(env=podman_env).build(spec, lines.append, threading.Event())
    message = str(caught.value)
    assert type(caught.value) is BuildError and "\n" not in message
    assert message.startswith("podman: the build failed (exit code") and "exit status 3" in message
    assert "about to fail" in lines


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
def test_podman_timeout_and_cancel_stop_the_build_and_leave_nothing_running(
        registry: LocalRegistry, base: tuple[str, str], podman_env: dict[str, str], tmp_path: Path,
        stop: str) -> None:
    marker = "300.5353" if stop == "timeout" else "300.5454"
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN echo started && sleep {marker}\n",
                     (f"{registry.host}/app/slow:1",), timeout=12.0 if stop == "timeout" else 120.0)
    cancel = threading.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line == "started" and stop == "cancel":
            threading.Timer(0.3, cancel.set).start()

    begin = time.monotonic()
    with pytest.raises(BuildTimeoutError if stop == "timeout" else BuildCanceledError):
        Podman(env=podman_env).build(spec, log, cancel)
    assert "started" in lines and time.monotonic() - begin < 60
    assert wait_gone(marker) == []
    assert wait_gone(str(spec.context_dir)) == []  # no podman left either
    assert zombie_children() == []


# -- podman as a build endpoint -----------------------------------------------------------------------------


@pytest.fixture
def service() -> Iterator[PodmanService]:
    with PodmanService() as started:
        yield started


def test_a_remote_podman_build_pulls_and_pushes_with_credentials_it_never_shows(
        auth_registry: LocalRegistry, buildah_env: dict[str, str], service: PodmanService, tmp_path: Path) -> None:
    base_ref = f"{auth_registry.host}/private/base:1"
    base_digest = push_base_image(auth_registry.host, "private/base:1", "v1", creds=ALICE, env=buildah_env)
    user, password = ALICE
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": encoded}}}))
    env = {**buildah_env, "DOCKER_CONFIG": str(docker_config)}
    spec = spec_of(tmp_path, f"FROM {base_ref}\nARG TOKEN\nRUN echo token=$TOKEN > /t\n",
                     (f"{auth_registry.host}/private/app:1",), secret_args={"TOKEN": SECRET},
                     annotations={BASE_NAME_ANNOTATION: base_ref, BASE_DIGEST_ANNOTATION: base_digest}, timeout=180.0)
    credentials = DockerCredentials(env)
    engine = RemoteEngine(Endpoint("ep1", service.url), env=env, credentials=credentials.get,
                          digest_of=lambda image: resolve_sync(ImageRef.parse(image), credentials=credentials).digest,
                          buildx_config=tmp_path / "buildx")
    lines: list[str] = []
    result = engine.build(spec, lines.append, threading.Event())

    assert result.pushed == {spec.images[0]: head_digest(auth_registry.host, "private/app", "1", creds=ALICE)}
    log = "\n".join(lines)
    for secret in (password, encoded, SECRET):
        assert secret not in log
    commands = [line for line in lines if line.startswith("$ podman --remote --url " + service.url)]
    assert [c.split()[5] for c in commands] == ["build", "push"]
    authfiles = {m.group(1) for c in commands if (m := re.search(r"--authfile (\S+)", c))}
    assert len(authfiles) == 1 and not Path(authfiles.pop()).exists()  # the private auth file is gone
    manifest = fetch_manifest(auth_registry.host, "private/app", "1", creds=ALICE)
    assert manifest["annotations"][BASE_DIGEST_ANNOTATION] == base_digest
    assert SECRET not in config_blob(auth_registry, "private/app", manifest, ALICE)


def test_an_endpoint_that_does_not_answer_is_unavailable_before_the_build_starts(
        registry: LocalRegistry, base: tuple[str, str], service: PodmanService, tmp_path: Path,
        buildah_env: dict[str, str]) -> None:
    url = service.url
    service.stop()
    engine = RemoteEngine(Endpoint("gone", url), env=buildah_env, credentials=lambda registry: None,
                          digest_of=lambda image: "", buildx_config=tmp_path / "buildx")
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN true\n", (f"{registry.host}/app/never:1",))
    with pytest.raises(EndpointUnavailableError) as caught:
        engine.build(spec, lambda line: None, threading.Event())
    assert str(caught.value).startswith(f"The build endpoint gone (podman at {url}) did not answer: ")
    assert "connection refused" in caught.value.detail


def test_the_docker_api_of_a_podman_service_builds_and_pushes_with_the_docker_cli(
        registry: LocalRegistry, base: tuple[str, str], buildah_env: dict[str, str], tmp_path: Path) -> None:
    # Integration tests never skip: without a docker CLI this fails and says how to get one.
    if shutil.which("docker") is None:
        pytest.fail(f"no docker CLI on PATH (package docker.io) -- {INSTALL_HINT}", pytrace=False)
    # podman's Docker-compatible API takes no isolation from the client, so a RUN step cannot run in this
    # container: the Dockerfile only copies. Plain HTTP to the registry is the engine's own setting, as
    # a Docker daemon's insecure-registries.
    with PodmanService(insecure_loopback=True) as docker_api:
        engine = RemoteEngine(Endpoint("d1", docker_api.url, Engine.DOCKER), env=buildah_env,
                              credentials=lambda registry: None, digest_of=lambda image: "",
                              buildx_config=tmp_path / "buildx")
        assert engine.probe().ok
        spec = spec_of(tmp_path, f"FROM {base[0]}\nCOPY hello /hello\n", (f"{registry.host}/app/docker:1",),
                         labels={"org.opencontainers.image.title": "d"})
        (spec.context_dir / "hello").write_text("hi\n")
        lines: list[str] = []
        result = engine.build(spec, lines.append, threading.Event())
    assert result.pushed == {spec.images[0]: head_digest(registry.host, "app/docker", "1")}
    assert any(line.startswith("$ docker build --platform linux/amd64") for line in lines)

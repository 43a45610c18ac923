"""Real buildah builds against a real local registry (docker-registry on 127.0.0.1).

The builder runs with a registries.conf that marks nothing insecure, so the plain-HTTP pulls and
pushes only work because of the --tls-verify flags the builder chose itself.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from acrtask.builders.base import BuildSpec
from acrtask.builders.buildah import Buildah
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError
from acrtask.media import OCI_MANIFEST
from acrtask.runner import BASE_DIGEST_ANNOTATION, BASE_NAME_ANNOTATION
from tests.support import LocalRegistry, fetch_manifest, head_digest, push_base_image
from tests.support.builds import SECRET, spec_of
from tests.support.procs import wait_gone, zombie_children

pytestmark = pytest.mark.integration


@pytest.fixture
def strict_env(buildah_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The test storage, but a registries.conf without insecure entries."""
    conf = tmp_path / "registries.conf"
    conf.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
    return {**buildah_env, "CONTAINERS_REGISTRIES_CONF": str(conf)}


@pytest.fixture
def base(registry: LocalRegistry, buildah_env: dict[str, str]) -> tuple[str, str]:
    """A tiny busybox base image in the registry: (reference, digest)."""
    ref = f"{registry.host}/base/busybox:1.0"
    return ref, push_base_image(registry.host, "base/busybox:1.0", "base-v1", env=buildah_env)


def buildah_containers(env: dict[str, str]) -> str:
    return subprocess.run(  # noqa: S603 - fixed argv
        ["buildah", "containers", "--quiet"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def test_build_pushes_two_tags_with_annotations_and_keeps_the_secret_out(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    base_ref, base_digest = base
    dockerfile = (
        f"FROM {base_ref}\n"
        "ARG GREETING\n"
        "ARG TOKEN\n"
        'RUN test -n "$TOKEN" && echo "greeting=$GREETING token=$TOKEN" && echo "$GREETING" > /greeting\n'
    )
    images = (f"{registry.host}/app/web:1.0", f"{registry.host}/app/web:run-ca1")
    spec = spec_of(
        tmp_path, dockerfile, images,
        build_args={"GREETING": "hello"}, secret_args={"TOKEN": SECRET},
        insecure_registries=frozenset({registry.host}),
        annotations={BASE_NAME_ANNOTATION: base_ref, BASE_DIGEST_ANNOTATION: base_digest},
        labels={"org.opencontainers.image.title": "web"},
        timeout=120.0,
    )
    lines: list[str] = []
    result = Buildah(env=strict_env).build(spec, lines.append, threading.Event())

    log = "\n".join(lines)
    assert SECRET not in log
    assert "greeting=hello token=***" in log  # the RUN's own echo, redacted
    assert all(SECRET not in arg for line in lines if line.startswith("$ ") for arg in line.split())

    assert set(result.pushed) == set(images)
    for image in images:
        repo, tag = image.removeprefix(f"{registry.host}/").split(":")
        assert result.pushed[image] == head_digest(registry.host, repo, tag)

    manifest = fetch_manifest(registry.host, "app/web", "1.0")
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"][BASE_NAME_ANNOTATION] == base_ref
    assert manifest["annotations"][BASE_DIGEST_ANNOTATION] == base_digest

    # The image config (history, env, labels) as pushed, and as buildah keeps it locally.
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        config = client.get(f"{registry.url}/v2/app/web/blobs/{manifest['config']['digest']}").text
    assert SECRET not in config
    assert json.loads(config)["config"]["Labels"]["org.opencontainers.image.title"] == "web"
    inspect = subprocess.run(  # noqa: S603 - fixed argv
        ["buildah", "inspect", images[0]], env=strict_env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert SECRET not in inspect
    assert json.loads(inspect)["OCIv1"]["config"]["Labels"]["org.opencontainers.image.title"] == "web"


def test_plain_build_keeps_history_and_uses_loopback_as_insecure(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    base_ref, _ = base
    dockerfile = f"FROM {base_ref} AS build\nRUN echo built > /built\nFROM build AS final\nRUN cat /built\n"
    images = (f"{registry.host}/app/plain:1",)
    spec = spec_of(tmp_path, dockerfile, images, target="final")  # no insecure list: loopback is enough
    lines: list[str] = []
    result = Buildah(env=strict_env).build(spec, lines.append, threading.Event())
    assert result.pushed[images[0]] == head_digest(registry.host, "app/plain", "1")
    assert "built" in lines
    manifest = fetch_manifest(registry.host, "app/plain", "1")
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        config = client.get(f"{registry.url}/v2/app/plain/blobs/{manifest['config']['digest']}").json()
    assert any("echo built" in h.get("created_by", "") for h in config["history"])


def test_build_without_push_returns_no_digests(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    image = f"{registry.host}/app/local:1"
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN true\n", (image,), push=False)
    assert Buildah(env=strict_env).build(spec, lambda line: None, threading.Event()).pushed == {}
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        assert client.head(f"{registry.url}/v2/app/local/manifests/1").status_code == 404


def test_failing_run_step_raises_build_error_with_buildahs_text(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    dockerfile = f"FROM {base[0]}\nRUN echo about to fail && exit 3\n"
    spec = spec_of(tmp_path, dockerfile, (f"{registry.host}/app/broken:1",))
    lines: list[str] = []
    with pytest.raises(BuildError) as caught:
        Buildah(env=strict_env).build(spec, lines.append, threading.Event())
    message = str(caught.value)
    assert type(caught.value) is BuildError
    assert "\n" not in message
    assert "exit status 3" in message and "RUN echo about to fail" in message
    assert message.startswith("buildah: the build failed (exit code")
    assert "about to fail" in lines


def run_until_stopped(spec: BuildSpec, env: dict[str, str], stopper: Callable[[threading.Event], None],
                      error: type[BuildError]) -> tuple[float, list[str]]:
    lines: list[str] = []
    cancel = threading.Event()
    stopper(cancel)
    start = time.monotonic()
    with pytest.raises(error):
        Buildah(env=env).build(spec, lines.append, cancel)
    return time.monotonic() - start, lines


def test_timeout_stops_the_build_and_leaves_nothing_running(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    marker = "300.4242"
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN sleep {marker}\n", (f"{registry.host}/app/slow:1",),
                     timeout=15.0)  # long enough to reach the RUN step on a loaded machine
    elapsed, lines = run_until_stopped(spec, strict_env, lambda cancel: None, BuildTimeoutError)
    assert elapsed < 30.0, elapsed
    assert any(f"RUN sleep {marker}" in line for line in lines)  # it really was running
    assert wait_gone(marker) == []
    assert wait_gone(str(spec.context_dir)) == []  # no buildah left either
    assert zombie_children() == []
    assert buildah_containers(strict_env) == ""


def test_cancel_from_another_thread_stops_the_build(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    marker = "30.5151"
    spec = spec_of(tmp_path, f"FROM {base[0]}\nRUN echo started && sleep {marker}\n",
                     (f"{registry.host}/app/canceled:1",), timeout=120.0)
    started = threading.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line == "started":
            started.set()

    cancel = threading.Event()

    def ctrl_c() -> None:  # what a Ctrl-C handler does: set the event from another thread
        if started.wait(60):
            time.sleep(0.3)
            cancel.set()

    canceller = threading.Thread(target=ctrl_c)
    canceller.start()
    begin = time.monotonic()
    try:
        with pytest.raises(BuildCanceledError):
            Buildah(env=strict_env).build(spec, log, cancel)
    finally:
        cancel.set()
        canceller.join(10)
    assert started.is_set() and time.monotonic() - begin < 20
    assert wait_gone(marker) == []
    assert zombie_children() == []
    assert buildah_containers(strict_env) == ""


def test_a_real_build_does_not_inherit_acrtasks_own_secrets(
    registry: LocalRegistry, base: tuple[str, str], strict_env: dict[str, str], tmp_path: Path
) -> None:
    from acrtask.process import RUN_TAG

    tag = f"{tmp_path}:ca1"
    parent = {**strict_env, "ACRTASK_WEBHOOK_TOKEN": "hook-s3cret-4711", "DOCKER_PASSWORD": "pw-s3cret-4711",
              RUN_TAG: tag}
    spec = spec_of(tmp_path, f"FROM {base[0]}\nARG TOKEN\nRUN sleep 2.4747\n", (f"{registry.host}/app/env:1",),
                     secret_args={"TOKEN": SECRET}, push=False, timeout=120.0)
    outcome: list[object] = []

    def build() -> None:
        try:
            outcome.append(Buildah(env=parent).build(spec, lambda line: None, threading.Event()))
        except Exception as exc:
            outcome.append(exc)

    builder = threading.Thread(target=build)
    builder.start()
    environs: dict[int, dict[str, str]] = {}
    for _ in range(2400):  # 0.05 s each: the build's own timeout (120 s) ends it first
        if not builder.is_alive():
            break
        for pid, env in tagged_environs(RUN_TAG, tag).items():
            environs.setdefault(pid, env)
        time.sleep(0.05)
    builder.join(130)
    assert outcome and not isinstance(outcome[0], Exception), outcome
    assert environs, "no build process carrying the run's tag was seen"
    for env in environs.values():  # buildah and everything it started
        assert "ACRTASK_WEBHOOK_TOKEN" not in env and "DOCKER_PASSWORD" not in env
        assert "hook-s3cret-4711" not in env.values() and "pw-s3cret-4711" not in env.values()
    assert any(env.get("TOKEN") == SECRET and env.get("PATH") for env in environs.values())  # what it needs


def tagged_environs(name: str, value: str) -> dict[int, dict[str, str]]:
    """The environment of every live process whose environment has name=value (/proc/<pid>/environ)."""
    marker = f"{name}={value}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        items = raw.split(b"\0")
        if marker in items:
            found[int(entry.name)] = dict(item.decode(errors="replace").partition("=")[::2] for item in items if item)
    return found

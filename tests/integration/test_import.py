"""`acrtask image import` between real registries: copies by digest, mounts, credentials, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ALICE, LocalRegistry, fetch_manifest, head_digest, push_base_image, push_multiarch_base
from tests.support.cli import Result
from tests.support.registry import REGISTRY_BIN

pytestmark = pytest.mark.integration

PLATFORMS = {"linux/amd64": "node-amd64-v1", "linux/arm64": "node-arm64-v1"}


@pytest.fixture
def env(tmp_path: Path, buildah_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: an empty Docker config, so no login of this machine's user is ever used."""
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text('{"auths": {}}')  # buildah insists on the file when DOCKER_CONFIG is set
    environ = {**os.environ, **buildah_env, "ACRTASK_HOME": str(tmp_path / "home"), "DOCKER_CONFIG": str(config)}
    for name in ("ACRTASK_REGISTRY", "ACRTASK_SOURCE_USERNAME", "ACRTASK_SOURCE_PASSWORD", "DOCKER_AUTH_CONFIG"):
        environ.pop(name, None)
    return environ


@pytest.fixture
def second_registry() -> Iterator[LocalRegistry]:
    assert os.access(REGISTRY_BIN, os.X_OK), f"{REGISTRY_BIN} is missing (package docker-registry)"
    with LocalRegistry() as reg:
        yield reg


def acrtask(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    done = subprocess.run([sys.executable, "-m", "acrtask", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=180)
    return Result(done.returncode, done.stdout, done.stderr)


def skopeo_fetch(host: str, reference: str, into: Path, env: dict[str, str]) -> str:
    """Pull one manifest and its blobs with skopeo (which checks every digest); returns the manifest's digest."""
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{host}/{reference}",
                    f"dir:{into}"], env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run(["skopeo", "manifest-digest", str(into / "manifest.json")], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def test_a_two_platform_index_is_copied_by_digest_and_both_platforms_pull(
        registry: LocalRegistry, second_registry: LocalRegistry, env: dict[str, str], tmp_path: Path) -> None:
    index, per_platform = push_multiarch_base(second_registry.host, "library/node:20", PLATFORMS, env=env)
    done = acrtask(env, "image", "import", "--source", f"{second_registry.host}/library/node:20",
                   "-t", f"{registry.host}/base/node:20")
    assert done.code == 0, done.err
    result = done.json()
    assert result["digest"] == index
    assert sorted(result["platforms"]) == sorted(PLATFORMS)
    assert result["manifests"] == 3
    assert result["blobs"]["mounted"] == 0 and result["blobs"]["copied"] == 4  # 2 configs, 2 layers
    assert head_digest(registry.host, "base/node", "20") == index
    copied = fetch_manifest(registry.host, "base/node", "20")
    assert copied == fetch_manifest(second_registry.host, "library/node", "20")
    for platform, digest in per_platform.items():
        pulled = skopeo_fetch(registry.host, f"base/node@{digest}", tmp_path / platform.replace("/", "-"), env)
        assert pulled == digest
        config = json.loads((tmp_path / platform.replace("/", "-") / "manifest.json").read_text())["config"]
        blob = (tmp_path / platform.replace("/", "-") / config["digest"].split(":")[1]).read_bytes()
        assert json.loads(blob)["architecture"] == platform.split("/")[1]
    # The same import again sends nothing: the tag is already at the digest.
    again = acrtask(env, "image", "import", "--source", f"{second_registry.host}/library/node:20",
                    "-t", f"{registry.host}/base/node:20")
    assert again.code == 0, again.err
    assert again.json()["unchanged"] is True


def test_within_one_registry_blobs_are_mounted_not_uploaded(registry: LocalRegistry, env: dict[str, str]) -> None:
    index, _ = push_multiarch_base(registry.host, "upstream/node:20", PLATFORMS, env=env)
    before = len(registry.access_log())
    done = acrtask(env, "image", "import", "--source", f"{registry.host}/upstream/node:20",
                   "-t", f"{registry.host}/mirror/node:20", "--verbose")
    assert done.code == 0, done.err
    assert done.json()["blobs"] == {"copied": 0, "mounted": 4, "alreadyPresent": 0}
    assert head_digest(registry.host, "mirror/node", "20") == index
    requests = registry.access_log()[before:]
    mounts = [r for r in requests if r[0] == "POST" and "mount=" in r[1]]
    assert len(mounts) == 4 and all(status == "201" for _, _, status in mounts)
    assert not [r for r in requests if "/blobs/" in r[1] and r[0] in ("PUT", "PATCH", "GET")]  # no bytes moved
    assert "Mounted blob" in done.err  # --verbose shows the progress


def test_a_source_that_needs_credentials(auth_registry: LocalRegistry, registry: LocalRegistry,
                                         env: dict[str, str]) -> None:
    digest = push_base_image(auth_registry.host, "private/base:1", "secret-v1", creds=ALICE, env=env)
    source = f"{auth_registry.host}/private/base:1"
    anonymous = acrtask(env, "image", "import", "--source", source, "-t", f"{registry.host}/base:1")
    assert anonymous.code == 1
    assert anonymous.err.startswith("ERROR: ") and "requires a login" in anonymous.err

    user, password = ALICE
    from_env = acrtask({**env, "ACRTASK_SOURCE_PASSWORD": password}, "image", "import", "--source", source,
                       "-t", f"{registry.host}/base:1", "-u", user)
    assert from_env.code == 0, from_env.err
    assert head_digest(registry.host, "base", "1") == digest

    from_stdin = acrtask(env, "image", "import", "--source", source, "-t", f"{registry.host}/base:2", "-u", user,
                         "--password-stdin", stdin=password + "\n")
    assert from_stdin.code == 0, from_stdin.err
    assert head_digest(registry.host, "base", "2") == digest

    wrong = acrtask(env, "image", "import", "--source", source, "-t", f"{registry.host}/base:3", "-u", user,
                    "-p", "not-the-password")
    assert wrong.code == 1
    for done in (anonymous, from_env, from_stdin, wrong):
        assert password not in done.out + done.err and "not-the-password" not in done.out + done.err


def test_a_missing_source_is_not_found(registry: LocalRegistry, env: dict[str, str]) -> None:
    for source in (f"{registry.host}/library/node:404", f"{registry.host}/nowhere/at-all:1"):
        done = acrtask(env, "image", "import", "--source", source, "-t", f"{registry.host}/base:1")
        assert done.code == 3, done.err
        assert done.err.startswith("ERROR: ") and done.err.count("\n") == 1
        assert "not found" in done.err


def test_a_target_that_refuses_the_push(registry: LocalRegistry, auth_registry: LocalRegistry,
                                        env: dict[str, str]) -> None:
    push_base_image(registry.host, "library/node:20", "v1", env=env)
    source = f"{registry.host}/library/node:20"
    with LocalRegistry(readonly=True) as readonly:
        done = acrtask(env, "image", "import", "--source", source, "-t", f"{readonly.host}/base/node:20")
    assert done.code == 1
    assert done.err.startswith("ERROR: ") and done.err.count("\n") == 1, done.err
    assert f"{readonly.host} refused the copy to {readonly.host}/base/node:20" in done.err
    assert "does not accept pushes" in done.err

    login = acrtask(env, "image", "import", "--source", source, "-t", f"{auth_registry.host}/base/node:20")
    assert login.code == 1
    assert f"{auth_registry.host} refused the copy" in login.err
    assert f"docker login {auth_registry.host}" in login.err


def test_an_existing_target_is_overwritten_only_with_force(registry: LocalRegistry, env: dict[str, str]) -> None:
    new = push_base_image(registry.host, "upstream/node:20", "v2", env=env)
    old = push_base_image(registry.host, "mine/node:20", "v1", env=env)
    args = ("image", "import", "--source", f"{registry.host}/upstream/node:20", "-t", f"{registry.host}/mine/node:20")
    kept = acrtask(env, *args)
    assert kept.code == 1
    assert "already exists" in kept.err and "--force" in kept.err
    assert head_digest(registry.host, "mine/node", "20") == old
    forced = acrtask(env, *args, "--force")
    assert forced.code == 0, forced.err
    assert head_digest(registry.host, "mine/node", "20") == new
    assert forced.json()["blobs"]["mounted"] + forced.json()["blobs"]["alreadyPresent"] == 2

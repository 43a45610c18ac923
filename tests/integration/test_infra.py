"""The real test infrastructure itself: docker-registry on 127.0.0.1 + buildah-made base images."""

from __future__ import annotations

import json

import httpx
import pytest

from acrtask.media import ACCEPT, INDEX_TYPES, MANIFEST_TYPES
from tests.support import (
    ALICE,
    LocalRegistry,
    NotificationSink,
    RegistryStartError,
    fetch_manifest,
    push_base_image,
    push_multiarch_base,
)

pytestmark = pytest.mark.integration


def head(reg: LocalRegistry, repo: str, ref: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=10.0, trust_env=False, auth=auth) as client:
        return client.head(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})


def test_registry_serves_loopback_only(registry: LocalRegistry) -> None:
    assert registry.host.startswith("127.0.0.1:") and registry.url == f"http://{registry.host}"
    r = httpx.get(f"{registry.url}/v2/", timeout=5.0, trust_env=False)
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert f"listening on {registry.host}" in registry.log_tail(200)


def test_push_base_image_digest_matches_head(registry: LocalRegistry, buildah_env: dict[str, str]) -> None:
    digest = push_base_image(registry.host, "library/base:v1", "v1", env=buildah_env)
    r = head(registry, "library/base", "v1")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Type"] in MANIFEST_TYPES
    manifest = fetch_manifest(registry.host, "library/base", digest)
    config_digest = manifest["config"]["digest"]
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        config = client.get(f"{registry.url}/v2/library/base/blobs/{config_digest}").json()
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


def test_different_content_different_digest(registry: LocalRegistry, buildah_env: dict[str, str]) -> None:
    d1 = push_base_image(registry.host, "base:v1", "v1", env=buildah_env)
    d2 = push_base_image(registry.host, "base:v2", "v2", env=buildah_env)
    d1_again = push_base_image(registry.host, "copy:v1", "v1", env=buildah_env)
    assert d1 != d2
    assert d1_again == d1  # commits use --timestamp 0: same content, same digest
    assert head(registry, "base", "v2").headers["Docker-Content-Digest"] == d2
    # Moving a tag to new content is what a base-image update looks like.
    d3 = push_base_image(registry.host, "base:v1", "v1-patched", env=buildah_env)
    assert d3 not in (d1, d2)
    assert head(registry, "base", "v1").headers["Docker-Content-Digest"] == d3


def test_docker_schema2_format(registry: LocalRegistry, buildah_env: dict[str, str]) -> None:
    digest = push_base_image(registry.host, "dock:1", "v1", format="docker", env=buildah_env)
    r = head(registry, "dock", "1")
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert r.headers["Docker-Content-Digest"] == digest


def test_multiarch_index(registry: LocalRegistry, buildah_env: dict[str, str]) -> None:
    contents = {"linux/amd64": "amd64-v1", "linux/arm64/v8": "arm64-v1"}
    index_digest, per_platform = push_multiarch_base(registry.host, "multi:1", contents, env=buildah_env)
    r = head(registry, "multi", "1")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == index_digest
    assert r.headers["Content-Type"] in INDEX_TYPES
    assert set(per_platform) == set(contents)
    assert len(set(per_platform.values())) == 2 and index_digest not in per_platform.values()
    for digest in per_platform.values():
        child = head(registry, "multi", digest)
        assert child.status_code == 200 and child.headers["Content-Type"] in MANIFEST_TYPES
    platforms = {
        (m["platform"]["architecture"], m["platform"].get("variant"))
        for m in fetch_manifest(registry.host, "multi", index_digest)["manifests"]
    }
    assert platforms == {("amd64", None), ("arm64", "v8")}


def test_basic_auth_registry(auth_registry: LocalRegistry, buildah_env: dict[str, str]) -> None:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        anon = client.get(f"{auth_registry.url}/v2/")
        assert anon.status_code == 401
        assert anon.headers["WWW-Authenticate"].startswith("Basic ")
        assert client.get(f"{auth_registry.url}/v2/", auth=ALICE).status_code == 200
        assert client.get(f"{auth_registry.url}/v2/", auth=("alice", "wrong")).status_code == 401
    digest = push_base_image(auth_registry.host, "private/base:v1", "v1", creds=ALICE, env=buildah_env)
    assert head(auth_registry, "private/base", "v1").status_code == 401
    assert head(auth_registry, "private/base", "v1", auth=ALICE).headers["Docker-Content-Digest"] == digest


def test_push_notification_reaches_listener(buildah_env: dict[str, str]) -> None:
    with (
        NotificationSink() as sink,
        LocalRegistry(notify_url=sink.url, notify_headers={"Authorization": ["Bearer test-token"]}) as reg,
    ):
        digest = push_base_image(reg.host, "notify/base:v7", "v7", env=buildah_env)
        event = sink.wait_for(
            lambda e: e.get("action") == "push" and e.get("target", {}).get("tag") == "v7", timeout=10.0
        )
    target = event["target"]
    assert target["repository"] == "notify/base"
    assert target["digest"] == digest
    assert target["mediaType"] in MANIFEST_TYPES
    headers = next(h for h, b in sink.requests if event in json.loads(b)["events"])
    assert headers.get("Authorization") == "Bearer test-token"
    # docker-registry 2.8 (Debian 12) sends ...events.v1+json; distribution v3 sends ...events.v2+json.
    assert headers.get("Content-Type", "").startswith("application/vnd.docker.distribution.events.v")


def test_startup_failure_reports_log_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_config(self: LocalRegistry, port: int) -> dict:
        return {"version": 0.1, "storage": {"nosuchdriver": {}}, "http": {"addr": f"127.0.0.1:{port}"}}

    monkeypatch.setattr(LocalRegistry, "_config", bad_config)
    reg = LocalRegistry(startup_timeout=5.0)
    with pytest.raises(RegistryStartError, match="nosuchdriver"):
        reg.start()
    assert reg.tmpdir is None and not reg.running

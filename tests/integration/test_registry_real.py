"""RegistryClient against a real docker-registry on 127.0.0.1, with images pushed by buildah."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from acrtask.errors import ManifestNotFoundError, RegistryError
from acrtask.media import DOCKER_MANIFEST, INDEX_TYPES, OCI_MANIFEST
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.registry import BlockingRegistryClient, DockerCredentials, RegistryClient, resolve_sync
from tests.support import ALICE, LocalRegistry, push_base_image, push_multiarch_base

pytestmark = pytest.mark.integration


def _ref(registry: LocalRegistry, repo_tag: str) -> ImageRef:
    return ImageRef.parse(f"{registry.host}/{repo_tag}")


def _no_creds(tmp_path: Path) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(tmp_path / "no-docker-config")}


def test_digests_equal_what_buildah_pushed(registry: LocalRegistry, buildah_env: dict[str, str],
                                           tmp_path: Path) -> None:
    oci = push_base_image(registry.host, "base/oci:v1", "v1", env=buildah_env)
    docker = push_base_image(registry.host, "base/docker:v1", "v1", format="docker", env=buildah_env)
    sent: list[str] = []

    async def scenario() -> None:
        async with RegistryClient(environ=_no_creds(tmp_path), on_request=lambda m, u: sent.append(m)) as client:
            first = await client.resolve(_ref(registry, "base/oci:v1"), Platform.parse("linux/amd64"))
            assert (first.digest, first.media_type, first.platform_digest) == (oci, OCI_MANIFEST, oci)
            second = await client.resolve(_ref(registry, "base/docker:v1"))
            assert (second.digest, second.media_type) == (docker, DOCKER_MANIFEST)
            pinned = await client.resolve(_ref(registry, f"base/oci@{oci}"))
            assert pinned.digest == oci

    asyncio.run(scenario())
    assert sent == ["HEAD", "HEAD", "HEAD"]


def test_moved_tag_gives_the_new_digest(registry: LocalRegistry, buildah_env: dict[str, str], tmp_path: Path) -> None:
    first = push_base_image(registry.host, "base:1", "v1", env=buildah_env)
    ref = _ref(registry, "base:1")
    with BlockingRegistryClient(environ=_no_creds(tmp_path)) as client:
        assert client.resolve(ref).digest == first
        moved = push_base_image(registry.host, "base:1", "v1-patched", env=buildah_env)
        assert client.resolve(ref).digest == moved != first


def test_multiarch_platform_digest(registry: LocalRegistry, buildah_env: dict[str, str], tmp_path: Path) -> None:
    contents = {"linux/amd64": "amd64-v1", "linux/arm64/v8": "arm64-v1"}
    index, per_platform = push_multiarch_base(registry.host, "multi:1", contents, env=buildah_env)
    ref = _ref(registry, "multi:1")
    sent: list[str] = []

    async def scenario() -> None:
        async with RegistryClient(environ=_no_creds(tmp_path), on_request=lambda m, u: sent.append(m)) as client:
            amd = await client.resolve(ref, Platform.parse("linux/amd64"))
            arm = await client.resolve(ref, Platform.parse("linux/arm64"))  # arm64 == arm64/v8
            assert amd.digest == arm.digest == index and amd.media_type in INDEX_TYPES
            assert amd.platform_digest == per_platform["linux/amd64"]
            assert arm.platform_digest == per_platform["linux/arm64/v8"]
            with pytest.raises(RegistryError, match="linux/amd64, linux/arm64/v8"):
                await client.resolve(ref, Platform.parse("linux/s390x"))

    asyncio.run(scenario())
    assert sent == ["HEAD", "GET", "HEAD", "HEAD"]  # the index is read once


def test_basic_auth_registry_with_docker_config(auth_registry: LocalRegistry, buildah_env: dict[str, str],
                                                tmp_path: Path) -> None:
    digest = push_base_image(auth_registry.host, "private/base:v1", "v1", creds=ALICE, env=buildah_env)
    user, password = ALICE
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    ref = _ref(auth_registry, "private/base:v1")
    sent: list[str] = []

    async def scenario() -> None:
        environ = {"DOCKER_CONFIG": str(tmp_path)}
        async with RegistryClient(environ=environ, on_request=lambda m, u: sent.append(m)) as client:
            for _ in range(3):
                assert (await client.resolve(ref)).digest == digest
        async with RegistryClient(environ=_no_creds(tmp_path)) as anonymous:
            with pytest.raises(RegistryError) as caught:
                await anonymous.resolve(ref)
            assert caught.value.code == "UNAUTHORIZED" and "docker login" in (caught.value.hint or "")
            assert password not in str(caught.value)

    asyncio.run(scenario())
    assert sent == ["HEAD"] * 4  # one 401, then one request per check


def test_wrong_password_is_explained_without_the_password(auth_registry: LocalRegistry, tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:not-the-password").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    with pytest.raises(RegistryError) as caught:
        resolve_sync(_ref(auth_registry, "private/base:v1"), credentials=DockerCredentials(
            {"DOCKER_CONFIG": str(tmp_path)}))
    assert caught.value.status == 401 and "not-the-password" not in str(caught.value)


def test_missing_tag_and_repository(registry: LocalRegistry, buildah_env: dict[str, str], tmp_path: Path) -> None:
    push_base_image(registry.host, "base:v1", "v1", env=buildah_env)
    with BlockingRegistryClient(environ=_no_creds(tmp_path)) as client:
        results = client.check_many([_ref(registry, "base:nope"), _ref(registry, "nothing:v1"),
                                     _ref(registry, "base:v1")])
    missing_tag, missing_repo, found = results.values()
    assert isinstance(missing_tag, ManifestNotFoundError) and missing_tag.exit_code == 3
    assert isinstance(missing_repo, ManifestNotFoundError)
    assert not isinstance(found, Exception)


def test_https_to_a_plain_http_registry_says_what_to_do(registry: LocalRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as caught:
        resolve_sync(_ref(registry, "base:v1"), loopback_http=False, environ=_no_creds(tmp_path))
    assert "server gave HTTP response to HTTPS client" in caught.value.message
    assert "ACRTASK_INSECURE_REGISTRIES" in (caught.value.hint or "")


def test_nothing_listening_is_connection_refused(tmp_path: Path) -> None:
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    with socket.socket() as held:  # bound but not listening: refused, and no one else can take the port
        held.bind(("127.0.0.1", 0))
        ref = ImageRef.parse(f"127.0.0.1:{held.getsockname()[1]}/base:v1")
        with pytest.raises(RegistryError, match="refused"):
            resolve_sync(ref, environ=_no_creds(tmp_path), sleep=no_wait)
    assert len(sleeps) == 3


def test_real_head_is_one_request_per_unchanged_tag(registry: LocalRegistry, tmp_path: Path) -> None:
    # Tags pushed through the API directly (buildah per tag would be slow); the same path bench/poll.py uses.
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    with httpx.Client(base_url=registry.url, trust_env=False, timeout=10) as client:
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        location = client.post("/v2/many/blobs/uploads/").headers["location"]
        client.put(f"{location}&digest={digest}", content=config).raise_for_status()
        for tag in range(20):
            manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                                   "annotations": {"tag": str(tag)},
                                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                              "digest": digest, "size": len(config)}})
            client.put(f"/v2/many/manifests/{tag}", content=manifest,
                     headers={"Content-Type": OCI_MANIFEST}).raise_for_status()
    refs = [_ref(registry, f"many:{tag}") for tag in range(20)]
    sent: list[str] = []

    async def scenario() -> None:
        async with RegistryClient(environ=_no_creds(tmp_path), on_request=lambda m, u: sent.append(m)) as client:
            for _ in range(3):
                results = await client.check_many(refs)
                assert len({r.digest for r in results.values() if not isinstance(r, Exception)}) == 20

    asyncio.run(scenario())
    assert sent == ["HEAD"] * 60


# -- TLS: the lanes' own connections (httpcore) verify certificates and keep connections alive ------------


class _TLSManifests(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    peers: list[int] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.peers.append(self.client_address[1])
        self.send_response(200 if self.path == "/v2/app/manifests/1" else 404)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(self.body).hexdigest())
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_https_registry_is_verified_and_connections_are_reused(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: S603 - fixed argv
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TLSManifests)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _TLSManifests.peers = []
    try:
        ref = ImageRef.parse(f"127.0.0.1:{server.server_address[1]}/app:1")
        trusted = ssl.create_default_context(cafile=str(cert))
        with BlockingRegistryClient(loopback_http=False, verify=trusted, environ=_no_creds(tmp_path)) as client:
            digests = {client.resolve(ref).digest for _ in range(5)}
        assert digests == {"sha256:" + hashlib.sha256(_TLSManifests.body).hexdigest()}
        assert len(_TLSManifests.peers) == 5 and len(set(_TLSManifests.peers)) == 1  # one connection
        with pytest.raises(RegistryError) as caught:
            resolve_sync(ref, loopback_http=False, environ=_no_creds(tmp_path))  # default CAs: untrusted
        assert "not trusted" in caught.value.message and "CA certificate" in (caught.value.hint or "")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

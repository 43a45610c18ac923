"""registry/copy.py and registry/blobs.py against the scripted fake registry, for what the local registry
cannot show: token scopes (it has no token service), a blob upload that fails half-way, a source that sends
wrong bytes. Copies between real registries are in tests/integration/test_import.py."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from acrtask.errors import RegistryError
from acrtask.media import OCI_INDEX, OCI_MANIFEST
from acrtask.registry.copy import copy_image
from tests.support.fake_registry import REALM_HOST, FakeNet, FakeRegistry, digest_of, ref, run

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN_TYPE = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class BlobRegistry(FakeRegistry):
    """FakeRegistry plus blobs, uploads (monolithic PUT), mounts and manifest pushes, with push scopes."""

    def __init__(self, net: FakeNet, host: str, auth: str | None = None) -> None:
        super().__init__(net, host, auth)
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, str] = {}
        self.fail_next_blob_put = 0    # answer 503 to this many blob PUTs (after reading them)
        self.corrupt: set[str] = set()  # blobs served with a byte changed

    def put_blob(self, repo: str, data: bytes) -> tuple[str, int]:
        digest = digest_of(data)
        self.blobs[(repo, digest)] = data
        return digest, len(data)

    def _authorized(self, request: httpx.Request, repo: str) -> bool:
        return self._scopes_allow(request, repo, "pull")

    def _scopes_allow(self, request: httpx.Request, repo: str, actions: str) -> bool:
        """A token covers `repo` for `actions` when one of its scopes grants them all (pull,push covers pull)."""
        if self.auth != "bearer":
            return super()._authorized(request, repo)
        given = request.headers.get("authorization", "")
        issued = self.net.tokens.issued.get(given[7:]) if given.startswith("Bearer ") else None
        if issued is None or self.net.clock.now >= issued.expires_at:
            return False
        granted = {scope.rsplit(":", 1)[0]: set(scope.rsplit(":", 1)[1].split(",")) for scope in issued.scopes}
        return set(actions.split(",")) <= granted.get(f"repository:{repo}", set())

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.script or "/blobs/" not in path and not (request.method == "PUT" and "/manifests/" in path):
            return super().handle(request)
        repo, _, rest = path[4:].partition("/blobs/") if "/blobs/" in path else path[4:].partition("/manifests/")
        push = request.method in ("POST", "PUT")
        if not self._scopes_allow(request, repo, "pull,push" if push else "pull"):
            return self._challenge(repo)
        if "/manifests/" in path:
            body = request.read()
            media_type = request.headers["content-type"]
            self.manifests[(repo, rest)] = self.manifests[(repo, digest_of(body))] = (media_type, body)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest_of(body)})
        if rest.startswith("uploads"):
            return self._upload(request, repo, rest)
        data = self.blobs.get((repo, rest))
        if data is None:
            return httpx.Response(404)
        if rest in self.corrupt:
            data = b"X" + data[1:]
        headers = {"Content-Length": str(len(data)), "Docker-Content-Digest": rest}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)

    def _upload(self, request: httpx.Request, repo: str, rest: str) -> httpx.Response:
        if request.method == "POST":
            mount, source = request.url.params.get("mount"), request.url.params.get("from")
            if mount and source and (source, mount) in self.blobs and self._scopes_allow(request, source, "pull"):
                self.blobs[(repo, mount)] = self.blobs[(source, mount)]
                return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{mount}"})
            upload = str(uuid.uuid4())
            self.uploads[upload] = repo
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{upload}?_state=x"})
        upload = rest.rsplit("/", 1)[1]
        data = request.read()  # a lax registry: it does not check the digest, so acrtask must
        if self.uploads.pop(upload, None) != repo:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UPLOAD_UNKNOWN", "message": "unknown"}]})
        if self.fail_next_blob_put:
            self.fail_next_blob_put -= 1
            return httpx.Response(503)
        self.blobs[(repo, request.url.params["digest"])] = data
        return httpx.Response(201)


def image(registry: BlobRegistry, repo: str, tag: str, platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
          foreign: bool = False) -> str:
    """Push an index with one manifest (config + layer) per platform; returns the index digest."""
    entries = []
    for platform in platforms:
        os_, arch = platform.split("/")
        config = registry.put_blob(repo, json.dumps({"os": os_, "architecture": arch}).encode())
        layer = registry.put_blob(repo, f"layer of {platform}".encode() * 1000)
        layers = [{"mediaType": LAYER_TYPE, "digest": layer[0], "size": layer[1]}]
        if foreign:
            layers.insert(0, {"mediaType": FOREIGN_TYPE, "digest": "sha256:" + "f" * 64, "size": 10,
                              "urls": ["https://example.com/foreign"]})
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                           "config": {"mediaType": CONFIG_TYPE, "digest": config[0], "size": config[1]}}).encode()
        digest = registry.push(repo, digest_of(body), body)
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                        "platform": {"os": os_, "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return registry.push(repo, tag, index, OCI_INDEX)


def blob_registry(net: FakeNet, host: str, auth: str | None = None) -> BlobRegistry:
    net.registries[host] = BlobRegistry(net, host, auth)
    return net.registries[host]  # type: ignore[return-value]


async def copy(net: FakeNet, source: str, target: str, **kwargs):
    async with net.client() as client:
        return await copy_image(client, ref(source), ref(target), **kwargs)


def token_scopes(net: FakeNet) -> list[list[str]]:
    return [r.url.params.get_list("scope") for r in net.log if r.url.host == REALM_HOST]


def test_copy_between_token_registries_asks_for_pull_then_push() -> None:
    net = FakeNet()
    source, target = blob_registry(net, "src.example", "bearer"), blob_registry(net, "dst.example", "bearer")
    index = image(source, "library/node", "20")
    result = run(copy(net, "src.example/library/node:20", "dst.example/base/node:20"))
    assert (result.digest, result.manifests, result.copied, result.mounted) == (index, 3, 4, 0)
    assert target.manifests[("base/node", "20")] == source.manifests[("library/node", "20")]
    assert token_scopes(net) == [["repository:library/node:pull"], ["repository:base/node:pull,push"]]
    # Blob bytes went with the tokens too (streamed outside the lanes), and arrived whole.
    assert {d for (repo, d) in target.blobs if repo == "base/node"} == {
        d for (repo, d) in source.blobs if repo == "library/node"}


def test_a_mount_asks_one_token_for_the_push_and_the_source_pull() -> None:
    net = FakeNet()
    registry = blob_registry(net, "reg.example", "bearer")
    image(registry, "upstream/node", "20")
    result = run(copy(net, "reg.example/upstream/node:20", "reg.example/mirror/node:20"))
    assert (result.copied, result.mounted) == (0, 4)
    assert ["repository:mirror/node:pull,push", "repository:upstream/node:pull"] in token_scopes(net)
    assert net.count("GET", path_part="/blobs/") == 0


def test_a_failed_blob_upload_is_sent_again_from_a_fresh_upload() -> None:
    net = FakeNet()
    source, target = blob_registry(net, "src.example"), blob_registry(net, "dst.example")
    index = image(source, "library/node", "20", platforms=("linux/amd64",))
    target.fail_next_blob_put = 1
    result = run(copy(net, "src.example/library/node:20", "dst.example/base/node:20"))
    assert result.digest == index and result.copied == 2
    assert net.count("PUT", host="dst.example", path_part="/blobs/uploads/") == 3  # 2 blobs, one sent twice
    assert net.count("POST", host="dst.example", path_part="/blobs/uploads/") == 3
    assert net.clock.sleeps  # backed off before the second try (on the fake clock)


def test_a_source_sending_wrong_bytes_fails_the_copy_and_moves_no_tag() -> None:
    net = FakeNet()
    source, target = blob_registry(net, "src.example"), blob_registry(net, "dst.example")
    image(source, "library/node", "20", platforms=("linux/amd64",))
    source.corrupt = {d for (_, d) in source.blobs}
    with pytest.raises(RegistryError, match="the source sent .* bytes hashing to") as raised:
        run(copy(net, "src.example/library/node:20", "dst.example/base/node:20"))
    assert raised.value.code == "DIGEST_INVALID"
    assert ("base/node", "20") not in target.manifests


def test_foreign_layers_are_not_copied() -> None:
    net = FakeNet()
    source, target = blob_registry(net, "src.example"), blob_registry(net, "dst.example")
    index = image(source, "library/win", "1", platforms=("windows/amd64",), foreign=True)
    result = run(copy(net, "src.example/library/win:1", "dst.example/base/win:1"))
    assert result.digest == index and result.copied == 2  # config and the ordinary layer
    assert not any(d == "sha256:" + "f" * 64 for (_, d) in target.blobs)


def test_a_target_tag_elsewhere_needs_force() -> None:
    net = FakeNet()
    source, target = blob_registry(net, "src.example"), blob_registry(net, "dst.example")
    image(source, "library/node", "20", platforms=("linux/amd64",))
    image(target, "base/node", "20", platforms=("linux/arm64",))
    with pytest.raises(Exception, match="already exists") as raised:
        run(copy(net, "src.example/library/node:20", "dst.example/base/node:20"))
    assert "--force" in str(raised.value)
    assert run(copy(net, "src.example/library/node:20", "dst.example/base/node:20", force=True)).copied == 2

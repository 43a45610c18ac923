"""A scripted fake registry for httpx.MockTransport, shared by the tests/test_registry_*.py modules.

`FakeNet` routes requests by host to `FakeRegistry`s and a `FakeTokenService`, logs every request, and
can be told to fail the next requests (`registry.fail(503, 503)`). `FakeClock` stands in for time: its
`sleep` records the delay and moves the clock, so nothing ever waits.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from acrtask.media import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from acrtask.reference import ImageRef
from acrtask.registry import Credentials, Policy, RegistryClient
from acrtask.registry.session import CredentialSource

REALM_HOST = "auth.example"
T = TypeVar("T")


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def manifest_body(tag: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"t": tag},
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": "sha256:" + "0" * 64, "size": 2}, "layers": []}).encode()


def index_body(children: dict[str, str], attestation_first: bool = True) -> bytes:
    """An OCI index with one entry per platform (`{"linux/amd64": digest}`) and a BuildKit attestation."""
    entries: list[dict[str, Any]] = []
    for platform, digest in children.items():
        os, arch, *variant = platform.split("/")
        entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 100,
                                 "platform": {"os": os, "architecture": arch}}
        if variant:
            entry["platform"]["variant"] = variant[0]
        entries.append(entry)
    attestation = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 100,
                   "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                   "vnd.docker.reference.digest": next(iter(children.values()))}}
    entries.insert(0 if attestation_first else len(entries), attestation)
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Issued:
    scopes: set[str]
    expires_at: float


Script = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes] | Exception | httpx.Response


class FakeRegistry:
    """One registry host. `auth` is None, "basic" or "bearer"; `users` maps user -> password."""

    def __init__(self, net: FakeNet, host: str, auth: str | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.net, self.host, self.auth = net, host, auth
        self.users = users if users is not None else {"alice": "s3cret-pass"}
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.script: deque[Script] = deque()
        self.head_digest = True   # send Docker-Content-Digest on HEAD
        self.head_status: int | None = None  # e.g. 405: refuse HEAD
        self.digest_override: dict[str, str] = {}  # tag -> wrong digest header on GET
        self.extra_headers: dict[str, str] = {}
        self.redirect_to: str | None = None  # GET/HEAD manifest answers 307 to this base URL

    def push(self, repo: str, tag: str, body: bytes | None = None, media_type: str = OCI_MANIFEST) -> str:
        body = manifest_body(f"{repo}:{tag}") if body is None else body
        digest = digest_of(body)
        self.manifests[(repo, tag)] = (media_type, body)
        self.manifests[(repo, digest)] = (media_type, body)
        return digest

    def fail(self, *items: Script) -> None:
        self.script.extend(items)

    def _challenge(self, repo: str) -> httpx.Response:
        if self.auth == "basic":
            header = 'Basic realm="fake"'
        else:
            header = (f'Bearer realm="https://{REALM_HOST}/token",service="{self.host}",'
                      f'scope="repository:{repo}:pull"')
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        return httpx.Response(401, headers={"WWW-Authenticate": header}, content=body.encode())

    def _authorized(self, request: httpx.Request, repo: str) -> bool:
        given = request.headers.get("authorization", "")
        if self.auth is None:
            return True
        if self.auth == "basic" and given.startswith("Basic "):
            user, _, password = base64.b64decode(given[6:]).decode().partition(":")
            return self.users.get(user) == password
        if self.auth == "bearer" and given.startswith("Bearer "):
            issued = self.net.tokens.issued.get(given[7:])
            return (issued is not None and self.net.clock.now < issued.expires_at
                    and f"repository:{repo}:pull" in issued.scopes)
        return False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            item = self.script.popleft()
            if isinstance(item, Exception):
                raise item
            if isinstance(item, httpx.Response):
                return item
            if isinstance(item, int):
                return httpx.Response(item)
            return httpx.Response(item[0], headers=item[1], content=item[2] if len(item) > 2 else b"")
        path = request.url.path
        if not path.startswith("/v2/") or "/manifests/" not in path:
            return httpx.Response(200 if path == "/v2/" else 404)
        repo, _, reference = path[4:].partition("/manifests/")
        if not self._authorized(request, repo):
            return self._challenge(repo)
        if self.redirect_to is not None:
            return httpx.Response(307, headers={"Location": f"{self.redirect_to}{path}"})
        found = self.manifests.get((repo, reference))
        if found is None:
            body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                           "detail": {"Tag": reference}}]}).encode()
            return httpx.Response(404, content=body if request.method == "GET" else b"")
        media_type, body = found
        headers = {"Content-Type": media_type, "Content-Length": str(len(body)), **self.extra_headers}
        if request.method == "HEAD":
            if self.head_status is not None:
                return httpx.Response(self.head_status)
            if self.head_digest:
                headers["Docker-Content-Digest"] = digest_of(body)
            return httpx.Response(200, headers=headers)
        headers["Docker-Content-Digest"] = self.digest_override.get(reference, digest_of(body))
        return httpx.Response(200, headers=headers, content=body)


class FakeTokenService:
    """The token endpoint at https://auth.example/token (GET with Basic or anonymous; POST refresh)."""

    def __init__(self, net: FakeNet) -> None:
        self.net = net
        self.issued: dict[str, Issued] = {}
        self.expires_in: int | None = 300
        self.field = "token"
        self.users = {"alice": "s3cret-pass"}
        self.refresh_tokens = {"refresh-xyz"}
        self.post_enabled = True
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            if not self.post_enabled:
                return httpx.Response(404)
            form = dict(httpx.QueryParams(request.content.decode()))
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens:
                return httpx.Response(401, json={"details": "bad refresh token"})
            return self._grant(form.get("scope", "").split())
        given = request.headers.get("authorization")
        if given is not None:
            user, _, password = base64.b64decode(given.split(" ", 1)[1]).decode().partition(":")
            if self.users.get(user) != password:
                # A careless server that echoes what it got: the client must scrub it.
                return httpx.Response(401, json={"details": f"invalid password {password!r} for {user}"})
        return self._grant(request.url.params.get_list("scope"))

    def _grant(self, scopes: list[str]) -> httpx.Response:
        value = f"tok-{len(self.issued) + 1}"
        lifetime = self.expires_in if self.expires_in is not None else 60
        self.issued[value] = Issued(set(scopes), self.net.clock.now + lifetime)
        body: dict[str, Any] = {self.field: value}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


@dataclass
class FakeNet:
    clock: FakeClock = field(default_factory=FakeClock)
    registries: dict[str, FakeRegistry] = field(default_factory=dict)
    log: list[httpx.Request] = field(default_factory=list)
    others: dict[str, Callable[[httpx.Request], httpx.Response]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = FakeTokenService(self)

    def registry(self, host: str = "reg.example", auth: str | None = None, **kwargs: Any) -> FakeRegistry:
        self.registries[host] = FakeRegistry(self, host, auth, **kwargs)
        return self.registries[host]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        host = request.url.netloc.decode()
        if host == REALM_HOST:
            return self.tokens.handle(request)
        if host in self.others:
            return self.others[host](request)
        registry = self.registries.get(host)
        if registry is None:
            raise httpx.ConnectError(f"[Errno 111] Connection refused ({host})")
        return registry.handle(request)

    def client(self, credentials: dict[str, Credentials] | CredentialSource | None = None,
               **kwargs: Any) -> RegistryClient:
        """A RegistryClient on this fake network, with the fake clock and `random()` fixed at 0.5."""
        store = StaticCredentials(credentials or {}) if isinstance(credentials, dict | None) else credentials
        options: dict[str, Any] = {"transport": httpx.MockTransport(self.handler), "credentials": store,
                                   "clock": self.clock.clock, "sleep": self.clock.sleep,
                                   "random": lambda: 0.5, "environ": {}}
        options.update(kwargs)
        return RegistryClient(**options)

    def count(self, method: str | None = None, host: str | None = None, path_part: str = "") -> int:
        return sum(1 for r in self.log
                   if (method is None or r.method == method)
                   and (host is None or r.url.netloc.decode() == host)
                   and path_part in r.url.path)

    def token_requests(self) -> int:
        return self.count(host=REALM_HOST)


class StaticCredentials:
    def __init__(self, table: dict[str, Credentials]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def get(self, registry: str) -> Credentials | None:
        self.lookups.append(registry)
        return self.table.get(registry)


def ref(text: str) -> ImageRef:
    return ImageRef.parse(text)


FAST = Policy()
ALICE = Credentials("alice", "s3cret-pass")
__all__ = ["DOCKER_MANIFEST", "OCI_INDEX", "OCI_MANIFEST"]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine (the tests are plain functions: no async plugin needed)."""
    return asyncio.run(coroutine)


async def resolve_with(client: RegistryClient, *args: Any, **kwargs: Any) -> Any:
    async with client:
        return await client.resolve(*args, **kwargs)

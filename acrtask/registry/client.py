"""RegistryClient: what digest a tag points at now, for one reference or thousands.

The hot path is one HEAD per tag: `Accept` lists all four manifest types, the answer's
Docker-Content-Digest is the result. GET (hashed and checked) only when a HEAD carries no digest or is
refused, or when a platform's digest must be read from an index acrtask has not seen before.
"""

from __future__ import annotations

import asyncio
import os
import random as _random
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import httpx

from acrtask import insecure as insecure_rule
from acrtask import media
from acrtask.errors import RegistryError
from acrtask.platform import Platform, select_manifest
from acrtask.reference import ImageRef
from acrtask.registry.auth import repository_scope
from acrtask.registry.credentials import DockerCredentials
from acrtask.registry.http import Connector, ReplyHook, RequestHook
from acrtask.registry.rules import Policy, status_error
from acrtask.registry.session import CredentialSource, RegistrySession

CheckKey = ImageRef | tuple[ImageRef, Platform | None]
_HEAD_PASS = frozenset({404, 405})
_GET_PASS = frozenset({404})
_CACHE_SIZE = 8192  # (index digest, platform) -> platform digest
_INDEX_CACHE_SIZE = 256  # parsed indexes, for other platforms of the same index


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a reference points at now. `platform_digest` is set when a platform was asked for: the
    digest of that platform's manifest (the manifest's own digest for a single-platform tag)."""

    ref: ImageRef
    digest: str
    media_type: str
    platform: Platform | None = None
    platform_digest: str | None = None


@dataclass(frozen=True, slots=True)
class _ManifestReply:
    """What a registry said of a manifest while resolving: its digest and type, the body if it was fetched."""

    digest: str
    media_type: str
    body: bytes | None  # only when a GET was needed anyway


class RegistryClient:
    """Resolves tags to digests. Use as `async with RegistryClient() as client:`; keep one for as long as
    you poll, so tokens, connections and index lookups are reused.

    `sleep`, `clock` (wall seconds) and `random` are injectable so tests never wait; `transport`
    replaces the network (an `httpx.MockTransport` serving every host); `on_request(method, url)` is
    called for every HTTP request sent, `on_reply(method, url, status, seconds)` when its answer came (status
    None when none did; blob streams are not timed).
    """

    def __init__(self, *, policy: Policy | None = None, credentials: CredentialSource | None = None,
                 insecure: Iterable[str] | None = None, loopback_http: bool = True,
                 environ: Mapping[str, str] | None = None, verify: ssl.SSLContext | bool = True,
                 transport: httpx.AsyncBaseTransport | None = None, on_request: RequestHook | None = None,
                 on_reply: ReplyHook | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time,
                 random: Callable[[], float] = _random.random) -> None:
        env = os.environ if environ is None else environ
        self.policy = policy or Policy()
        self._credentials = credentials if credentials is not None else DockerCredentials(env)
        self._insecure = insecure_rule.from_env(env) if insecure is None else insecure_rule.normalised(insecure)
        self._loopback_http = loopback_http
        self._connector = Connector(self.policy, transport=transport, verify=verify, on_request=on_request,
                                    on_reply=on_reply)
        self.sleep, self.clock, self.random = sleep, clock, random  # the session's Clocks
        self._registries: dict[str, RegistrySession] = {}
        self._platforms: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._indexes: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._connector.aclose()

    # -- public API ----------------------------------------------------------------------------------------

    async def resolve(self, ref: ImageRef, platform: Platform | None = None, *,
                      known: Mapping[str, str] | None = None) -> Resolved:
        """The digest `ref` points at (and, given `platform`, that platform's manifest digest).

        `known` maps index digests to this platform's digest, as stored from earlier checks: when the
        tag still points at a known index, no GET is needed. Raises ManifestNotFoundError (never
        retried) for a missing tag, RegistryError for anything else.
        """
        registry = self._registry(ref)
        manifest = await self._manifest(registry, ref)
        if platform is None:
            return Resolved(ref, manifest.digest, manifest.media_type)
        chosen = await self._platform(registry, ref, manifest, platform, known)
        return Resolved(ref, manifest.digest, manifest.media_type, platform, chosen)

    async def platform_digest(self, ref: ImageRef, digest: str, platform: Platform) -> str:
        """The manifest digest for `platform` inside the index `digest` of `ref`'s repository (the digest
        itself when it is a single manifest). Cached: an index digest is immutable."""
        registry = self._registry(ref)
        return await self._platform(registry, ref, _ManifestReply(digest, "", None), platform, None)

    async def check_many(self, items: Iterable[CheckKey]) -> dict[CheckKey, Resolved | Exception]:
        """Resolve many references at once: `ImageRef`s, or `(ImageRef, Platform | None)` pairs.

        Duplicates are checked once; each registry gets up to `policy.concurrency` requests in flight and
        its own failures. Every item gets a Resolved or the exception that explains it; one bad reference
        never fails the batch.
        """
        keys = list(dict.fromkeys(items))
        wanted: dict[ImageRef, list[tuple[CheckKey, Platform | None]]] = {}
        for key in keys:
            ref, platform = (key, None) if isinstance(key, ImageRef) else key
            wanted.setdefault(ref, []).append((key, platform))
        by_registry: dict[RegistrySession, list[ImageRef]] = {}
        for ref in wanted:
            by_registry.setdefault(self._registry(ref), []).append(ref)
        results: dict[CheckKey, Resolved | Exception] = {}

        async def check(registry: RegistrySession, ref: ImageRef) -> None:
            try:
                manifest = await self._manifest(registry, ref)
            except Exception as exc:  # one bad reference must not fail the others
                for key, _ in wanted[ref]:
                    results[key] = exc
                return
            for key, platform in wanted[ref]:
                if platform is None:
                    results[key] = Resolved(ref, manifest.digest, manifest.media_type)
                    continue
                try:
                    chosen = await self._platform(registry, ref, manifest, platform, None)
                    results[key] = Resolved(ref, manifest.digest, manifest.media_type, platform, chosen)
                except Exception as exc:
                    results[key] = exc

        async def drain(registry: RegistrySession, queue: deque[ImageRef]) -> None:
            while queue:
                await check(registry, queue.popleft())

        async def run(registry: RegistrySession, refs: list[ImageRef]) -> None:
            queue = deque(refs)
            if not registry.auth.settled:
                await check(registry, queue.popleft())  # learn the registry's auth scheme once, alone
            if registry.auth.scheme == "bearer":
                await registry.prefetch_tokens({ref.repository for ref in queue})
            workers = min(len(queue), self.policy.concurrency)
            await asyncio.gather(*(drain(registry, queue) for _ in range(workers)))

        await asyncio.gather(*(run(registry, refs) for registry, refs in by_registry.items()))
        return {key: results[key] for key in keys}

    def cap_circuit(self, seconds: float) -> None:
        """Never leave a failing registry alone longer than `seconds` (watch keeps it under its poll interval,
        so a registry that recovers is noticed by the next check it would have made anyway)."""
        if seconds >= self.policy.circuit_cap:
            return
        self.policy = replace(self.policy, circuit_cap=seconds)
        for session in self._registries.values():
            session.use_policy(self.policy)

    def session(self, ref: ImageRef) -> RegistrySession:
        """The session of `ref`'s registry (for copy.py, which pushes through the same auth and retries)."""
        return self._registry(ref)

    @property
    def connector(self) -> Connector:
        return self._connector

    # -- manifests -----------------------------------------------------------------------------------------

    def _registry(self, ref: ImageRef) -> RegistrySession:
        host = ref.api_host
        found = self._registries.get(host)
        if found is None:
            plain = insecure_rule.is_insecure(ref, self._insecure, loopback=self._loopback_http)
            found = RegistrySession(ref, plain, self.policy, self._connector, self._credentials, self)
            self._registries[host] = found
        return found

    async def _manifest(self, registry: RegistrySession, ref: ImageRef) -> _ManifestReply:
        reference = ref.tag or ref.digest or "latest"
        url = registry.manifest_url(ref.repository, reference)
        # `ref` is the error context: formatted only if something goes wrong, never per request.
        reply = await registry.call("HEAD", url, repository_scope(ref.repository), ref, _HEAD_PASS)
        if reply.status == 404:
            raise status_error(404, reply.content, ref, registry.host, registry.registry, not_found=True)
        if reply.status != 405:
            digest = reply.headers.get("docker-content-digest")
            if digest is not None and media.is_digest(digest) and (ref.tag or digest == ref.digest):
                return _ManifestReply(digest, media.media_type_of(reply.headers.get("content-type")), None)
        return await self._get(registry, ref, reference, None if ref.tag else ref.digest)

    async def _get(self, registry: RegistrySession, ref: ImageRef, reference: str,
                   expected: str | None) -> _ManifestReply:
        where = str(ref) if reference in (ref.tag, ref.digest) else f"{ref.name}@{reference}"
        url = registry.manifest_url(ref.repository, reference)
        reply = await registry.call("GET", url, repository_scope(ref.repository), where, _GET_PASS,
                                    limit=media.MAX_MANIFEST_BYTES)
        if reply.status == 404:
            raise status_error(404, reply.content, where, registry.host, registry.registry, not_found=True)
        digest = media.verified_digest(reply.content, reply.headers.get("docker-content-digest"), expected, where)
        return _ManifestReply(digest, media.media_type_of(reply.headers.get("content-type")), reply.content)

    async def _platform(self, registry: RegistrySession, ref: ImageRef, manifest: _ManifestReply, platform: Platform,
                        known: Mapping[str, str] | None) -> str:
        if manifest.media_type and manifest.media_type not in media.INDEX_TYPES:
            return manifest.digest  # a single manifest is its own platform's manifest
        if known and manifest.digest in known:
            return known[manifest.digest]
        key = (manifest.digest, str(platform))
        hit = self._platforms.get(key)
        if hit is not None:
            return hit
        index = self._indexes.get(manifest.digest)
        if index is None:
            body, media_type = manifest.body, manifest.media_type
            if body is None:
                fetched = await self._get(registry, ref, manifest.digest, manifest.digest)
                body, media_type = fetched.body or b"", fetched.media_type
            where = f"{ref.name}@{manifest.digest}"
            document, media_type = media.parse_manifest(body, media_type, where)
            if media_type not in media.INDEX_TYPES:
                self._cache(self._platforms, key, manifest.digest)
                return manifest.digest
            index = self._cache(self._indexes, manifest.digest, document, _INDEX_CACHE_SIZE)
        entry = select_manifest(index, platform)
        if entry is None:
            offered = ", ".join(media.platforms_in(index)) or "none"
            raise RegistryError(f"{ref} has no image for {platform} (index {manifest.digest[:19]}…).",
                                f"Platforms it offers: {offered}.", code="PLATFORM_UNKNOWN")
        chosen = entry.get("digest")
        if not isinstance(chosen, str) or not media.is_digest(chosen):
            raise RegistryError(f"{ref}: the index entry for {platform} has no valid digest.",
                                "The registry returned a corrupt index; report it to its operator.",
                                code="MANIFEST_INVALID")
        return self._cache(self._platforms, key, chosen)

    @staticmethod
    def _cache(table: OrderedDict[Any, Any], key: Any, value: Any, size: int = _CACHE_SIZE) -> Any:
        """Insert into a bounded cache, evicting the oldest entry (digests are immutable: never stale)."""
        table[key] = value
        if len(table) > size:
            table.popitem(last=False)
        return value

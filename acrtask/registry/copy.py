"""Copying an image between repositories through the registry API, by digest, as `az acr import` and
`crane copy` do: the index, every platform's manifest, their configs and layers. Nothing is rebuilt, so
the copy's digest is the source's.

- A blob the target already has is skipped (one HEAD). Between two repositories of one registry a blob is
  mounted (`POST .../blobs/uploads/?mount=<digest>&from=<repository>`), which moves no bytes. Otherwise it
  streams from source to target: the source's GET is piped into a monolithic PUT, so one chunk per blob in
  flight is in memory, whatever the layer's size (BLOBS_IN_FLIGHT blobs at a time).
- Manifests (at most 4 MiB each) go through RegistrySession.call, with its auth, retries and circuit:
  the children by digest first, then the top one under the target's tag, so the tag never points at
  something incomplete.
- Requests to the target ask for `repository:<target>:pull,push`; a mount adds `repository:<source>:pull`
  to the same token.
- Non-distributable ("foreign") layers are not copied, as crane does by default: they are fetched from
  their own URLs, never from a registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from acrtask.errors import AcrTaskError, RegistryError
from acrtask.reference import ImageRef
from acrtask.registry import media
from acrtask.registry.auth import repository_scope
from acrtask.registry.client import RegistryClient
from acrtask.registry.http import ERROR_BODY_LIMIT, USER_AGENT
from acrtask.registry.session import Clocks, RegistrySession
from acrtask.registry.transport import RETRY_STATUSES, is_retryable, status_error, transport_error

log = logging.getLogger("acrtask.registry")

BLOBS_IN_FLIGHT = 4
MAX_INDEX_DEPTH = 2  # an index of indexes is legal; deeper nesting is not something registries serve
_PUSH_REFUSED = frozenset({401, 403, 405})  # 405: a read-only registry or a pull-through mirror
_FOREIGN = ("nondistributable", "foreign")

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class CopyResult:
    """What a copy did. `digest` is the source's, and now the target tag's."""

    source: ImageRef
    target: ImageRef
    digest: str
    media_type: str
    platforms: tuple[str, ...] = ()
    manifests: int = 0      # manifests pushed, the top one included
    copied: int = 0         # blobs streamed from source to target
    mounted: int = 0        # blobs mounted from the source repository (same registry)
    present: int = 0        # blobs the target had already
    bytes_copied: int = 0
    unchanged: bool = False  # the target tag already pointed at the source's digest: nothing was sent


@dataclass(frozen=True)
class _Manifest:
    digest: str
    media_type: str
    body: bytes
    document: dict[str, Any]


class ImageCopy:
    """One copy of `source` to `target`, through `client`'s sessions, connector and clocks."""

    def __init__(self, client: RegistryClient, source: ImageRef, target: ImageRef,
                 log_line: LogSink | None = None) -> None:
        self.source, self.target = source, target
        self.src: RegistrySession = client.session(source)
        self.tgt: RegistrySession = client.session(target)
        self.connector = client.connector
        self.clocks: Clocks = client
        self.say = log_line or (lambda line: log.info("%s", line))
        self.pull_scope = repository_scope(source.repository)
        self.push_scope = f"repository:{target.repository}:pull,push"
        self.mountable = self.src is self.tgt and source.repository != target.repository
        self.copied = self.mounted = self.present = self.bytes_copied = 0
        self._gate = asyncio.Semaphore(BLOBS_IN_FLIGHT)

    async def run(self, force: bool) -> CopyResult:
        source, target = self.source, self.target
        top = await self._fetch(source.digest or source.tag or "latest", source.digest, str(source), top=True)
        existing = await self._target_digest()
        platforms = tuple(media.platforms_in(top.document)) if top.media_type in media.INDEX_TYPES else ()
        if existing == top.digest:
            self.say(f"{target} is already at {top.digest}: nothing to copy.")
            return CopyResult(source, target, top.digest, top.media_type, platforms, unchanged=True)
        if existing is not None and not force:
            raise AcrTaskError(f"{target} already exists (at {existing}); it was not overwritten.",
                               "Pass --force to point it at the source's digest.")
        children, blobs = await self._walk(top)
        self.say(f"Copying {source} ({top.digest}) to {target}: {len(children) + 1} manifest(s), "
                 f"{len(blobs)} blob(s).")
        await self._copy_blobs(blobs)
        for child in children:
            await self._put(child, child.digest)
        await self._put(top, target.tag or "latest")
        self.say(f"{target} now points at {top.digest} ({self.copied} blob(s) copied, {self.mounted} mounted, "
                 f"{self.present} already there).")
        return CopyResult(source, target, top.digest, top.media_type, platforms, len(children) + 1,
                          self.copied, self.mounted, self.present, self.bytes_copied)

    # -- manifests -----------------------------------------------------------------------------------------

    async def _fetch(self, reference: str, expected: str | None, where: str, top: bool = False) -> _Manifest:
        src = self.src
        url = src.manifest_url(self.source.repository, reference)
        try:
            reply = await src.call("GET", url, self.pull_scope, where, frozenset({404}),
                                   limit=media.MAX_MANIFEST_BYTES)
        except RegistryError as exc:
            if top and exc.status in (401, 403):
                exc.hint = (f"Check the login for {src.registry}: image import's -u/-p, or for a copy task "
                            f"docker login {src.registry}.")
            raise
        if reply.status == 404:
            if top:
                raise status_error(404, reply.content, where, src.host, src.registry, not_found=True)
            raise RegistryError(f"{where}: the source names a manifest that {src.host} does not have.",
                                "The source image is incomplete in its registry; copy another tag or digest.",
                                code="MANIFEST_UNKNOWN")
        digest = media.verified_digest(reply.content, reply.headers.get("docker-content-digest"), expected, where)
        document, media_type = media.parse_manifest(
            reply.content, media.media_type_of(reply.headers.get("content-type")), where)
        if media_type not in media.INDEX_TYPES | media.MANIFEST_TYPES:
            raise RegistryError(f"{where} is a {media_type or 'untyped'} manifest, which acrtask does not copy.",
                                "Only OCI and Docker schema 2 images and indexes can be imported.",
                                code="UNSUPPORTED")
        return _Manifest(digest, media_type, reply.content, document)

    async def _target_digest(self) -> str | None:
        """The digest the target tag points at now, or None when it does not exist."""
        tgt, target = self.tgt, self.target
        url = tgt.manifest_url(target.repository, target.tag or "latest")
        reply = await self._on_target(tgt.call("HEAD", url, self.push_scope, target, frozenset({404, 405})))
        if reply.status == 404:
            return None
        digest = reply.headers.get("docker-content-digest")
        if reply.status != 405 and media.is_digest(digest):
            return digest
        reply = await self._on_target(tgt.call("GET", url, self.push_scope, target, frozenset({404}),
                                               limit=media.MAX_MANIFEST_BYTES))
        if reply.status == 404:
            return None
        return media.verified_digest(reply.content, reply.headers.get("docker-content-digest"), None, str(target))

    async def _walk(self, top: _Manifest) -> tuple[list[_Manifest], dict[str, int]]:
        """The manifests under `top` (children before their parents) and every blob they name, with sizes."""
        children: list[_Manifest] = []
        blobs: dict[str, int] = {}

        async def visit(manifest: _Manifest, depth: int) -> None:
            where = f"{self.source.name}@{manifest.digest}"
            if manifest.media_type not in media.INDEX_TYPES:
                config = manifest.document.get("config")
                layers = manifest.document.get("layers")
                if not isinstance(layers, list):
                    raise _corrupt(where, "it has no list of layers")
                for descriptor in (config, *layers):
                    digest, size = _descriptor(descriptor, where)
                    if not any(word in str(descriptor.get("mediaType", "")) for word in _FOREIGN):
                        blobs[digest] = size
                return
            if depth >= MAX_INDEX_DEPTH:
                raise _corrupt(where, f"its indexes nest more than {MAX_INDEX_DEPTH} deep")
            entries = manifest.document.get("manifests")
            if not isinstance(entries, list):
                raise _corrupt(where, "it has no list of manifests")
            digests = [_descriptor(entry, where)[0] for entry in entries]
            fetched = await asyncio.gather(*(self._fetch(d, d, f"{self.source.name}@{d}") for d in digests))
            for child in fetched:
                await visit(child, depth + 1)
                children.append(child)

        await visit(top, 0)
        return children, blobs

    async def _put(self, manifest: _Manifest, reference: str) -> None:
        tgt, target = self.tgt, self.target
        where = f"{target.name}:{reference}" if reference == target.tag else f"{target.name}@{reference}"
        url = tgt.manifest_url(target.repository, reference)
        reply = await self._on_target(tgt.call("PUT", url, self.push_scope, where, limit=ERROR_BODY_LIMIT,
                                               body=manifest.body, content_type=manifest.media_type))
        stored = reply.headers.get("docker-content-digest")
        if stored and stored != manifest.digest:
            raise RegistryError(f"{where}: {tgt.host} stored the manifest as {stored}, not {manifest.digest}.",
                                "The target registry rewrites manifests; a copy there cannot keep the digest.",
                                code="DIGEST_INVALID")
        self.say(f"Pushed manifest {manifest.digest} to {where}.")

    # -- blobs ---------------------------------------------------------------------------------------------

    async def _copy_blobs(self, blobs: dict[str, int]) -> None:
        tasks = [asyncio.create_task(self._blob(digest, size)) for digest, size in blobs.items()]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one blob failed: the copy has failed, stop the others
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _blob(self, digest: str, size: int) -> None:
        async with self._gate:
            tgt, target = self.tgt, self.target
            where = f"{target.name}@{digest}"
            url = httpx.URL(f"{tgt.base}/v2/{target.repository}/blobs/{digest}")
            reply = await self._on_target(tgt.call("HEAD", url, self.push_scope, where, frozenset({404})))
            if reply.status < 300:
                self.present += 1
                return
            location = None
            if self.mountable:
                uploads = httpx.URL(f"{tgt.base}/v2/{target.repository}/blobs/uploads/",
                                    params={"mount": digest, "from": self.source.repository})
                reply = await self._on_target(tgt.call("POST", uploads, f"{self.push_scope} {self.pull_scope}",
                                                       where, limit=ERROR_BODY_LIMIT))
                if reply.status == 201:
                    self.mounted += 1
                    self.say(f"Mounted blob {digest} from {self.source.repository}.")
                    return
                location = reply.headers.get("location")  # 202: the registry opened an upload instead
            await self._upload(digest, size, location, where)

    async def _upload(self, digest: str, size: int, location: str | None, where: str) -> None:
        """Stream one blob, again from the start (a fresh upload) after a failure that may pass."""
        attempts = self.tgt.policy.attempts
        for attempt in range(attempts):
            try:
                if location is None:
                    location = await self._open_upload(where)
                await self._stream(digest, size, location, where)
                self.copied += 1
                self.bytes_copied += size
                self.say(f"Copied blob {digest} ({_size(size)}).")
                return
            except httpx.TransportError as exc:
                error = transport_error(exc, where, _host_of(exc, self.tgt.host))
                if not is_retryable(exc) or attempt + 1 >= attempts:
                    raise error from None
            except RegistryError as exc:
                if exc.status not in RETRY_STATUSES or attempt + 1 >= attempts:
                    raise
            location = None
            await self.clocks.sleep(self.tgt.policy.backoff(attempt, self.clocks.random))

    async def _open_upload(self, where: str) -> str:
        tgt = self.tgt
        uploads = httpx.URL(f"{tgt.base}/v2/{self.target.repository}/blobs/uploads/")
        reply = await self._on_target(tgt.call("POST", uploads, self.push_scope, where, limit=ERROR_BODY_LIMIT))
        location = reply.headers.get("location")
        if not location:
            raise RegistryError(f"{where}: {tgt.host} opened an upload without saying where (no Location).",
                                "The target registry is misbehaving; report it to its operator.",
                                code="BLOB_UPLOAD_INVALID")
        return location

    async def _stream(self, digest: str, size: int, location: str, where: str) -> None:
        src, tgt = self.src, self.tgt
        source_url = httpx.URL(f"{src.base}/v2/{self.source.repository}/blobs/{digest}")
        upload = tgt.origin.join(location).copy_add_param("digest", digest)
        got_headers = _headers(await src.authorization(self.pull_scope, where))
        # An upload URL on another host (some registries hand uploads to storage) gets no credentials.
        same_origin = (upload.scheme, upload.host, upload.port) == (tgt.origin.scheme, tgt.origin.host, tgt.origin.port)
        put_headers = _headers(await tgt.authorization(self.push_scope, where) if same_origin else "",
                               {"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        hasher = hashlib.new(digest.split(":", 1)[0])
        received = 0
        async with self.connector.stream("GET", source_url, got_headers) as got:
            if got.status_code != 200:
                raise src.scrub(status_error(got.status_code, await _start_of(got), f"{self.source.name}@{digest}",
                                             src.host, src.registry))

            async def chunks() -> AsyncIterator[bytes]:
                nonlocal received
                async for chunk in _raw(got):  # raw: a blob's bytes are its digest, never decoded
                    received += len(chunk)
                    hasher.update(chunk)
                    yield chunk

            async with self.connector.stream("PUT", upload, put_headers, chunks()) as put:
                if put.status_code != 201:
                    error = status_error(put.status_code, await _start_of(put), where, tgt.host, tgt.registry)
                    raise self._refused(tgt.scrub(error)) if put.status_code in _PUSH_REFUSED else tgt.scrub(error)
        actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if received != size or actual != digest:  # the target checks too; this names the culprit
            raise RegistryError(f"{self.source.name}@{digest}: the source sent {received} bytes hashing to {actual}, "
                                f"not {size} bytes of {digest}.", "The source registry or a proxy altered the "
                                "blob; try again, and report it if it persists.", code="DIGEST_INVALID")

    # -- errors --------------------------------------------------------------------------------------------

    async def _on_target(self, request: Awaitable[Any]) -> Any:
        try:
            return await request
        except RegistryError as exc:
            if exc.status in _PUSH_REFUSED or exc.code in ("UNAUTHORIZED", "DENIED", "UNSUPPORTED"):
                raise self._refused(exc) from None
            raise

    def _refused(self, exc: RegistryError) -> RegistryError:
        registry = self.target.registry
        hint = (f"{registry} does not accept pushes here (read-only, or a mirror); choose another target."
                if exc.status == 405 or exc.code == "UNSUPPORTED" else
                f"Log in with an account that may push to {self.target.name} (docker login {registry}).")
        reason = exc.message.split(f": {self.tgt.host} ", 1)[-1]  # "answered 403 ...", "requires a login."
        error = RegistryError(f"{registry} refused the copy to {self.target}: it {reason}", hint,
                              code=exc.code, status=exc.status)
        return self.tgt.scrub(error)


async def copy_image(client: RegistryClient, source: ImageRef, target: ImageRef, *, force: bool = False,
                     log_line: LogSink | None = None) -> CopyResult:
    """Copy `source` (a tag or a digest) to the tag `target` with `client` (a RegistryClient)."""
    if target.digest is not None or target.tag is None:
        raise AcrTaskError(f"Cannot copy to {target}: the target must be a tag.", "Give -t a tag such as base/node:20.")
    if source.api_host == target.api_host and source.repository == target.repository and \
            (source.digest is None and source.tag == target.tag):
        raise AcrTaskError(f"{source} would be copied onto itself.", "Give -t another repository or tag.")
    return await ImageCopy(client, source, target, log_line).run(force)


def _descriptor(entry: object, where: str) -> tuple[str, int]:
    if not isinstance(entry, dict):
        raise _corrupt(where, "a descriptor is not an object")
    digest, size = entry.get("digest"), entry.get("size")
    if not isinstance(digest, str) or not media.is_digest(digest):
        raise _corrupt(where, f"a descriptor has no valid digest ({str(digest)[:80]!r})")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _corrupt(where, f"the descriptor of {digest} has no valid size")
    return digest, size


def _corrupt(where: str, problem: str) -> RegistryError:
    return RegistryError(f"{where}: the manifest cannot be copied: {problem}.",
                         "The source registry returned a corrupt manifest; report it to its operator.",
                         code="MANIFEST_INVALID")


def _headers(authorization: str, extra: dict[str, str] | None = None) -> httpx.Headers:
    headers = httpx.Headers({"User-Agent": USER_AGENT, **(extra or {})})
    if authorization:
        headers["Authorization"] = authorization
    return headers


async def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came. A transport may hand over a response already read (httpx.MockTransport does):
    then its content is all there is."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


async def _start_of(response: httpx.Response) -> bytes:
    """The first 64 KiB of an error answer (enough for its OCI error), never the whole of a large body."""
    parts: list[bytes] = []
    size = 0
    async for chunk in _raw(response):
        parts.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_LIMIT:
            break
    return b"".join(parts)[:ERROR_BODY_LIMIT]


def _host_of(exc: httpx.TransportError, default: str) -> str:
    """The host a streamed request failed on (the source, the target, or blob storage after a redirect)."""
    try:
        return exc.request.url.netloc.decode()
    except RuntimeError:  # raised by httpx when the error carries no request
        return default


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"

"""The blobs of an image copy (registry/copy.py), each moved the cheapest way there is:

- a blob the target already has is skipped (one HEAD);
- between two repositories of one registry a blob is mounted (`POST .../blobs/uploads/?mount=<digest>&from=
  <repository>`), which moves no bytes, and its request adds `repository:<source>:pull` to the target's token;
- otherwise it streams from source to target: the source's GET is piped into a monolithic PUT, so one chunk
  per blob in flight is in memory, whatever the layer's size (BLOBS_IN_FLIGHT blobs at a time). A stream
  that fails in a way that may pass is sent again from the start, as a new upload.

Blob bytes do not go through RegistrySession.call (its lanes read whole bodies) but through the connector's
streams, with the sessions' Authorization. `CopyEnds` (the sessions, the token scopes and what a refusal by
the target means) serves the manifests' requests too.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from acrtask.errors import RegistryError
from acrtask.reference import ImageRef
from acrtask.registry.auth import repository_scope
from acrtask.registry.http import ERROR_BODY_LIMIT, USER_AGENT, Connector
from acrtask.registry.rules import RETRY_STATUSES, is_retryable, status_error, transport_error
from acrtask.registry.session import Clocks, RegistrySession

BLOBS_IN_FLIGHT = 4
PUSH_REFUSED = frozenset({401, 403, 405})  # 405: a read-only registry or a pull-through mirror

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class CopyEnds:
    """Where a copy reads and writes: the two sessions (the same one within a registry) and their scopes."""

    source: ImageRef
    target: ImageRef
    src: RegistrySession
    tgt: RegistrySession

    @property
    def pull_scope(self) -> str:
        return repository_scope(self.source.repository)

    @property
    def push_scope(self) -> str:
        return f"repository:{self.target.repository}:pull,push"

    @property
    def mountable(self) -> bool:
        return self.src is self.tgt and self.source.repository != self.target.repository

    async def on_target(self, request: Awaitable[Any]) -> Any:
        """`request`'s answer; a refusal by the target said as one (read-only, no push rights)."""
        try:
            return await request
        except RegistryError as exc:
            if exc.status in PUSH_REFUSED or exc.code in ("UNAUTHORIZED", "DENIED", "UNSUPPORTED"):
                raise self.refused(exc) from None
            raise

    def refused(self, exc: RegistryError) -> RegistryError:
        registry = self.target.registry
        hint = (f"{registry} does not accept pushes here (read-only, or a mirror); choose another target."
                if exc.status == 405 or exc.code == "UNSUPPORTED" else
                f"Log in with an account that may push to {self.target.name} (docker login {registry}).")
        reason = exc.message.split(f": {self.tgt.host} ", 1)[-1]  # "answered 403 ...", "requires a login."
        error = RegistryError(f"{registry} refused the copy to {self.target}: it {reason}", hint,
                              code=exc.code, status=exc.status)
        return self.tgt.scrub(error)


class BlobCopy:
    """The blobs of one copy, and what became of them (counted for CopyResult)."""

    def __init__(self, ends: CopyEnds, connector: Connector, clocks: Clocks, say: LogSink) -> None:
        self.ends = ends
        self.connector = connector
        self.clocks = clocks
        self.say = say
        self.copied = self.mounted = self.present = self.bytes_copied = 0
        self._gate = asyncio.Semaphore(BLOBS_IN_FLIGHT)

    async def copy(self, blobs: dict[str, int]) -> None:
        """Copy `blobs` (digest: size), BLOBS_IN_FLIGHT at a time; the first failure stops the others."""
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
            ends = self.ends
            tgt, target = ends.tgt, ends.target
            where = f"{target.name}@{digest}"
            url = httpx.URL(f"{tgt.base}/v2/{target.repository}/blobs/{digest}")
            reply = await ends.on_target(tgt.call("HEAD", url, ends.push_scope, where, frozenset({404})))
            if reply.status < 300:
                self.present += 1
                return
            location = None
            if ends.mountable:
                uploads = httpx.URL(f"{tgt.base}/v2/{target.repository}/blobs/uploads/",
                                    params={"mount": digest, "from": ends.source.repository})
                reply = await ends.on_target(tgt.call("POST", uploads, f"{ends.push_scope} {ends.pull_scope}",
                                                      where, limit=ERROR_BODY_LIMIT))
                if reply.status == 201:
                    self.mounted += 1
                    self.say(f"Mounted blob {digest} from {ends.source.repository}.")
                    return
                location = reply.headers.get("location")  # 202: the registry opened an upload instead
            await self._upload(digest, size, location, where)

    async def _upload(self, digest: str, size: int, location: str | None, where: str) -> None:
        """Stream one blob, again from the start (a fresh upload) after a failure that may pass."""
        tgt = self.ends.tgt
        attempts = tgt.policy.attempts
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
                error = transport_error(exc, where, _host_of(exc, tgt.host))
                if not is_retryable(exc) or attempt + 1 >= attempts:
                    raise error from None
            except RegistryError as exc:
                if exc.status not in RETRY_STATUSES or attempt + 1 >= attempts:
                    raise
            location = None
            await self.clocks.sleep(tgt.policy.backoff(attempt, self.clocks.random))

    async def _open_upload(self, where: str) -> str:
        ends = self.ends
        tgt = ends.tgt
        uploads = httpx.URL(f"{tgt.base}/v2/{ends.target.repository}/blobs/uploads/")
        reply = await ends.on_target(tgt.call("POST", uploads, ends.push_scope, where, limit=ERROR_BODY_LIMIT))
        location = reply.headers.get("location")
        if not location:
            raise RegistryError(f"{where}: {tgt.host} opened an upload without saying where (no Location).",
                                "The target registry is misbehaving; report it to its operator.",
                                code="BLOB_UPLOAD_INVALID")
        return location

    async def _stream(self, digest: str, size: int, location: str, where: str) -> None:
        ends = self.ends
        src, tgt, source = ends.src, ends.tgt, ends.source
        source_url = httpx.URL(f"{src.base}/v2/{source.repository}/blobs/{digest}")
        upload = tgt.origin.join(location).copy_add_param("digest", digest)
        got_headers = _headers(await src.authorization(ends.pull_scope, where))
        # An upload URL on another host (some registries hand uploads to storage) gets no credentials.
        same_origin = (upload.scheme, upload.host, upload.port) == (tgt.origin.scheme, tgt.origin.host, tgt.origin.port)
        put_headers = _headers(await tgt.authorization(ends.push_scope, where) if same_origin else "",
                               {"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        hasher = hashlib.new(digest.split(":", 1)[0])
        received = 0
        async with self.connector.stream("GET", source_url, got_headers) as got:
            if got.status_code != 200:
                raise src.scrub(status_error(got.status_code, await _start_of(got), f"{source.name}@{digest}",
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
                    raise ends.refused(tgt.scrub(error)) if put.status_code in PUSH_REFUSED else tgt.scrub(error)
        actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
        if received != size or actual != digest:  # the target checks too; this names the culprit
            raise RegistryError(f"{source.name}@{digest}: the source sent {received} bytes hashing to {actual}, "
                                f"not {size} bytes of {digest}.", "The source registry or a proxy altered the "
                                "blob; try again, and report it if it persists.", code="DIGEST_INVALID")


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

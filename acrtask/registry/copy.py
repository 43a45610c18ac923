"""Copying an image between repositories through the registry API, by digest, as `az acr import` and
`crane copy` do: the index, every platform's manifest, their configs and layers. Nothing is rebuilt, so
the copy's digest is the source's.

- The blobs first (registry/blobs.py: skipped when the target has them, mounted within a registry,
  streamed otherwise), then the manifests.
- Manifests (at most 4 MiB each) go through RegistrySession.call, with its auth, retries and circuit:
  the children by digest first, then the top one under the target's tag, so the tag never points at
  something incomplete.
- Requests to the target ask for `repository:<target>:pull,push`.
- Non-distributable ("foreign") layers are not copied, as crane does by default: they are fetched from
  their own URLs, never from a registry.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from acrtask import media
from acrtask.errors import AcrTaskError, RegistryError
from acrtask.reference import ImageRef
from acrtask.registry.blobs import BlobCopy, CopyEnds, LogSink
from acrtask.registry.client import RegistryClient
from acrtask.registry.http import ERROR_BODY_LIMIT
from acrtask.registry.rules import status_error

log = logging.getLogger("acrtask.registry")

MAX_INDEX_DEPTH = 2  # an index of indexes is legal; deeper nesting is not something registries serve
_FOREIGN = ("nondistributable", "foreign")


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
class _FetchedManifest:
    """A manifest read in full to be copied: its bytes as served and the document they hold."""

    digest: str
    media_type: str
    body: bytes
    document: dict[str, Any]


class ImageCopy:
    """One copy of `source` to `target`, through `client`'s sessions, connector and clocks."""

    def __init__(self, client: RegistryClient, source: ImageRef, target: ImageRef,
                 log_line: LogSink | None = None) -> None:
        self.ends = CopyEnds(source, target, client.session(source), client.session(target))
        self.say = log_line or (lambda line: log.info("%s", line))
        self.blobs = BlobCopy(self.ends, client.connector, client, self.say)

    async def run(self, force: bool) -> CopyResult:
        source, target = self.ends.source, self.ends.target
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
        await self.blobs.copy(blobs)
        for child in children:
            await self._put(child, child.digest)
        await self._put(top, target.tag or "latest")
        done = self.blobs
        self.say(f"{target} now points at {top.digest} ({done.copied} blob(s) copied, {done.mounted} mounted, "
                 f"{done.present} already there).")
        return CopyResult(source, target, top.digest, top.media_type, platforms, len(children) + 1,
                          done.copied, done.mounted, done.present, done.bytes_copied)

    # -- manifests -----------------------------------------------------------------------------------------

    async def _fetch(self, reference: str, expected: str | None, where: str, top: bool = False) -> _FetchedManifest:
        src = self.ends.src
        url = src.manifest_url(self.ends.source.repository, reference)
        try:
            reply = await src.call("GET", url, self.ends.pull_scope, where, frozenset({404}),
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
        return _FetchedManifest(digest, media_type, reply.content, document)

    async def _target_digest(self) -> str | None:
        """The digest the target tag points at now, or None when it does not exist."""
        ends = self.ends
        tgt, target = ends.tgt, ends.target
        url = tgt.manifest_url(target.repository, target.tag or "latest")
        reply = await ends.on_target(tgt.call("HEAD", url, ends.push_scope, target, frozenset({404, 405})))
        if reply.status == 404:
            return None
        digest = reply.headers.get("docker-content-digest")
        if reply.status != 405 and media.is_digest(digest):
            return digest
        reply = await ends.on_target(tgt.call("GET", url, ends.push_scope, target, frozenset({404}),
                                              limit=media.MAX_MANIFEST_BYTES))
        if reply.status == 404:
            return None
        return media.verified_digest(reply.content, reply.headers.get("docker-content-digest"), None, str(target))

    async def _walk(self, top: _FetchedManifest) -> tuple[list[_FetchedManifest], dict[str, int]]:
        """The manifests under `top` (children before their parents) and every blob they name, with sizes."""
        children: list[_FetchedManifest] = []
        blobs: dict[str, int] = {}

        async def visit(manifest: _FetchedManifest, depth: int) -> None:
            where = f"{self.ends.source.name}@{manifest.digest}"
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
            fetched = await asyncio.gather(*(self._fetch(d, d, f"{self.ends.source.name}@{d}") for d in digests))
            for child in fetched:
                await visit(child, depth + 1)
                children.append(child)

        await visit(top, 0)
        return children, blobs

    async def _put(self, manifest: _FetchedManifest, reference: str) -> None:
        ends = self.ends
        tgt, target = ends.tgt, ends.target
        where = f"{target.name}:{reference}" if reference == target.tag else f"{target.name}@{reference}"
        url = tgt.manifest_url(target.repository, reference)
        reply = await ends.on_target(tgt.call("PUT", url, ends.push_scope, where, limit=ERROR_BODY_LIMIT,
                                              body=manifest.body, content_type=manifest.media_type))
        stored = reply.headers.get("docker-content-digest")
        if stored and stored != manifest.digest:
            raise RegistryError(f"{where}: {tgt.host} stored the manifest as {stored}, not {manifest.digest}.",
                                "The target registry rewrites manifests; a copy there cannot keep the digest.",
                                code="DIGEST_INVALID")
        self.say(f"Pushed manifest {manifest.digest} to {where}.")

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

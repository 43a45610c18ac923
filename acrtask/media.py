"""Manifest media types, digests and index parsing: the pure part of talking to a registry."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from acrtask.errors import RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# What a push notification may name: the types acrtask reads, and schema 1 (old registries still send it).
PUSHED_TYPES = INDEX_TYPES | MANIFEST_TYPES | {DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED}

# All four, indexes first: leaving the index types out makes some registries answer a multi-arch tag
# with a single amd64 manifest, and then the digest we track is not the tag's.
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution registry refuses manifests over 4 MiB too

_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})")


def is_digest(text: str | None) -> bool:
    """True for a digest acrtask can verify (sha256/384/512 with lowercase hex of the right length)."""
    return text is not None and _DIGEST.fullmatch(text) is not None


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def verified_digest(body: bytes, claimed: str | None, expected: str | None, where: str) -> str:
    """The digest of `body`, checked against the registry's header and the digest we asked for.

    A mismatch raises: a corrupt or tampered manifest is never returned as a result.
    """
    for wanted in (expected, claimed):
        if wanted is None:
            continue
        if not is_digest(wanted):
            raise RegistryError(f"{where}: the registry sent an invalid digest {wanted[:80]!r}.",
                                "The registry is misbehaving; report it to its operator.",
                                code="DIGEST_INVALID")
        actual = compute_digest(body, wanted.split(":", 1)[0])
        if actual != wanted:
            raise RegistryError(f"{where}: the manifest body hashes to {actual}, not {wanted}.",
                                "The registry or a proxy altered the manifest; try again, and report it "
                                "if it persists.", code="DIGEST_INVALID")
    if expected is not None:
        return expected
    if claimed is not None:
        return claimed
    return compute_digest(body)


def media_type_of(content_type: str | None) -> str:
    """The media type of a Content-Type header, without parameters (which clients must ignore)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def parse_manifest(body: bytes, content_type: str, where: str) -> tuple[dict[str, Any], str]:
    """Decode a manifest or index; return it and its media type (from Content-Type or the body)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{where}: the manifest is not valid JSON ({exc.__class__.__name__}).",
                            "The registry returned a corrupt manifest; report it to its operator.",
                            code="MANIFEST_INVALID") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{where}: the manifest is JSON but not an object.",
                            "The registry returned a corrupt manifest; report it to its operator.",
                            code="MANIFEST_INVALID")
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared and content_type and declared != content_type:
        # The spec says to reject this: the body and the header disagree on what it is.
        raise RegistryError(f"{where}: the manifest says it is {declared} but was served as {content_type}.",
                            "The registry is misbehaving; report it to its operator.",
                            code="MANIFEST_INVALID")
    media_type = content_type or (declared if isinstance(declared, str) else "")
    if not media_type and isinstance(document.get("manifests"), list):
        media_type = OCI_INDEX  # untyped OCI indexes are legal: a "manifests" list makes it one
    return document, media_type


def platforms_in(index: dict[str, Any]) -> list[str]:
    """The platforms an index offers, for error hints (`linux/amd64, linux/arm64/v8`)."""
    found: list[str] = []
    for entry in index.get("manifests") or ():
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and platform.get("os") not in (None, "unknown"):
            parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
            found.append("/".join(str(part) for part in parts if part))
    return found

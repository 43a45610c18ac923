"""Image references: Docker's grammar and normalisation (distribution/reference v0.6.0), as a value type.

`ImageRef.parse("alpine")` gives `docker.io/library/alpine:latest`, exactly as `docker pull` reads it.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from acrtask.errors import ValidationError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"
REPOSITORY_PATH_MAX = 255

_LEGACY_DOCKER_HUB = "index.docker.io"
_OFFICIAL_PREFIX = "library/"

# The grammar pieces of distribution/reference's regexp.go, spelled with explicit ASCII classes
# (Python's \w is Unicode) and always used with fullmatch (Python's $ accepts a trailing newline).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"

_REMOTE_NAME = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_AND_PORT = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_IN_REFERENCE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")

# OCI descriptor.md digest grammar, plus the algorithms go-digest knows (it rejects any other).
_OCI_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_LOWER_HEX = re.compile(r"[a-f0-9]+")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}

_HINT = "Use a reference such as registry.example.com/team/app:1.0."
_DIGEST_HINT = "A digest looks like sha256: followed by 64 lowercase hex characters."


def _quote(text: str) -> str:
    # Keep error messages on one line even when the input holds control characters.
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return f"'{shown}'"


def _invalid(text: str, reason: str, hint: str = _HINT) -> ValidationError:
    return ValidationError(f"Invalid image reference {_quote(text)}: {reason}.", hint)


def _digest_problem(text: str) -> str | None:
    """Why `text` is not a usable digest, or None when it is."""
    algorithm, colon, encoded = text.partition(":")
    if not colon or not algorithm or not encoded:
        return f"digest {_quote(text)} is not of the form <algorithm>:<hex>"
    if not _OCI_ALGORITHM.fullmatch(algorithm):
        return f"digest algorithm {_quote(algorithm)} is not valid (algorithms are lowercase, e.g. sha256)"
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        return f"digest algorithm {_quote(algorithm)} is not supported (use sha256, sha384 or sha512)"
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        return f"a {algorithm} digest needs exactly {length} lowercase hex characters after '{algorithm}:'"
    return None


def _is_domain(component: str) -> bool:
    # splitDockerDomain's test for "the part before the first '/' names a registry".
    return (
        component == "localhost"
        or "." in component
        or ":" in component
        or component.lower() != component
    )


def names_registry(text: str) -> bool:
    """Whether a reference starts with its own registry (rather than falling back to a default one)."""
    first, slash, _ = text.partition("/")
    return bool(slash) and _is_domain(first)


def _normalise_registry(registry: str) -> str:
    return DOCKER_HUB if registry == _LEGACY_DOCKER_HUB else registry


def _check_tag(text: str, tag: str) -> None:
    if tag == "":
        raise _invalid(text, "the tag after ':' is empty",
                       "Put a tag after ':' (for example app:1.0), or leave out the ':' to mean 'latest'.")
    if not _TAG.fullmatch(tag):
        raise _invalid(text, f"tag {_quote(tag)} is not valid (up to 128 letters, digits, '_', '.' or '-', "
                             "not starting with '.' or '-')")


def _check_digest(text: str, digest: str) -> None:
    if digest == "":
        raise _invalid(text, "the digest after '@' is empty", _DIGEST_HINT)
    problem = _digest_problem(digest)
    if problem is None and not _DIGEST_IN_REFERENCE.fullmatch(digest):
        problem = f"digest {_quote(digest)} is not hex"  # unreachable for the algorithms we accept
    if problem is not None:
        raise _invalid(text, problem, _DIGEST_HINT)


def host_of(registry: str) -> str:
    """The registry without its port: `[::1]:5000` → `[::1]`, `localhost:5000` → `localhost`."""
    if registry.startswith("["):
        return registry[: registry.find("]") + 1]
    return registry.split(":", 1)[0]


def is_loopback_host(host: str) -> bool:
    """True when `host` (no port; an IPv6 address with or without brackets) is this machine: localhost,
    *.localhost (RFC 6761), 127.0.0.0/8, ::1."""
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host[1:-1] if host.startswith("[") else host).is_loopback
    except ValueError:
        return False


def parse_registry(text: str) -> str:
    """A registry `host[:port]` as image references spell it (`index.docker.io` is docker.io); raises
    ValidationError (one line, with a hint) when `text` is not one."""
    if not _DOMAIN_AND_PORT.fullmatch(text):
        raise ValidationError(f"Invalid registry {_quote(text)}: it is not a valid host[:port].",
                              "Use a registry such as myreg.azurecr.io or localhost:5000, without a scheme.")
    return _normalise_registry(text)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A fully qualified image reference. Build it with `parse`, which normalises the way Docker does; values
    read back from storage (already normal) are built directly. Without a digest it names a tag: what watch
    checks (one HEAD per distinct registry/repository/tag), what a task builds on, what a trigger says moved;
    with one, an image a run pushed."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_registry: str | None = None) -> ImageRef:
        """Parse and normalise `text`; raise ValidationError (one line, with a hint) when it is invalid.

        `default_registry` replaces docker.io when the text does not start with a registry, and then no
        `library/` is added (`hello:v1` with `myreg.azurecr.io` → `myreg.azurecr.io/hello:v1`).
        """
        if text == "":
            raise _invalid(text, "the reference is empty")
        if _IDENTIFIER.fullmatch(text):
            # Docker refuses these because they look like image IDs.
            raise _invalid(text, "a 64-character hex string is an image ID, not a repository name",
                           "Name the repository, pinned if you like: alpine@sha256:<digest>.")

        default = DOCKER_HUB if default_registry is None else parse_registry(default_registry)
        first, slash, rest = text.partition("/")
        names_registry = bool(slash) and _is_domain(first)
        if names_registry:
            registry, remainder = _normalise_registry(first), rest
        else:
            registry, remainder = default, text
        official = registry == DOCKER_HUB and "/" not in remainder
        if official:
            remainder = _OFFICIAL_PREFIX + remainder

        # The path ends at the first '@' or ':' (neither can occur in a path), so the split is exact.
        name_part, at, digest = remainder.partition("@")
        path, colon, tag = name_part.partition(":")

        # Checked first, as distribution does, so `Foo/Bar` reports case rather than bad characters.
        if path.lower() != path:
            raise _invalid(text, "repository name must be lowercase")
        if names_registry and not _DOMAIN_AND_PORT.fullmatch(first):
            raise _invalid(text, f"registry {_quote(first)} is not a valid host[:port]")
        if not _REMOTE_NAME.fullmatch(path):
            given = path.removeprefix(_OFFICIAL_PREFIX) if official else path  # as the user typed it
            if given == "":
                raise _invalid(text, "the repository name is empty")
            raise _invalid(text, f"repository name {_quote(given)} is not valid (lowercase letters and "
                                 "digits, separated by '.', '_', '__' or '-', in components joined by '/')")
        if colon:
            _check_tag(text, tag)
        if at:
            _check_digest(text, digest)
        if len(path) > REPOSITORY_PATH_MAX:
            raise _invalid(text, f"the repository path is {len(path)} characters long; "
                                 f"the maximum is {REPOSITORY_PATH_MAX}", "Use a shorter repository path.")

        if colon:
            return cls(registry, path, tag, digest if at else None)
        if at:
            return cls(registry, path, None, digest)  # digest-only stays untagged, as in Docker
        return cls(registry, path, DEFAULT_TAG, None)

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return self.name + tag + digest

    def __lt__(self, other: ImageRef) -> bool:
        """Sorted by registry, repository, tag, digest (no tag or digest first): watch checks tags in this order."""
        return ((self.registry, self.repository, self.tag or "", self.digest or "")
                < (other.registry, other.repository, other.tag or "", other.digest or ""))

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host[:port] to send registry API requests to."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def is_pinned(self) -> bool:
        return self.digest is not None

    @property
    def is_loopback(self) -> bool:
        """True when the registry host is this machine (localhost, 127.0.0.0/8, [::1])."""
        return is_loopback_host(host_of(self.registry))

"""Platforms (`os/arch[/variant]`): parsing, containerd's normalisation, choosing a manifest from an index.

User input (`--platform`, stored tasks) is validated strictly; registry data is normalised tolerantly and
never raises. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acrtask.errors import ValidationError

VALID_OS = ("linux", "windows", "darwin", "freebsd")
VALID_ARCHITECTURES = (
    "amd64", "386", "arm", "arm64", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64",
)
# Aliases people type that normalise onto a valid architecture (x86 is ACR's spelling of 386).
ARCHITECTURE_ALIASES = ("x86_64", "x86-64", "aarch64", "i386", "x86", "armhf", "armel")

# The platform assumed where none is given (ACR's default): a task's, a run's, a build endpoint's, a base
# image dependency's; and what `Platform.parse` fills in for a missing part (`linux` is linux/amd64, `arm64`
# linux/arm64), where containerd would take the host's. Builds never depend on the host they run on.
DEFAULT_OS = "linux"
DEFAULT_ARCHITECTURE = "amd64"

_VARIANT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHAPE_HINT = "Use os[/arch[/variant]] or an architecture, for example linux/amd64, arm64 or linux/arm/v7."

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"


def _normalise_os(os: str) -> str:
    os = os.lower()
    return "darwin" if os == "macos" else os


def _normalise_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch, plus ACR's `x86`."""
    arch, variant = arch.lower(), variant.lower()
    match arch:
        case "i386" | "x86":
            return "386", ""
        case "x86_64" | "x86-64" | "amd64":
            return "amd64", "" if variant == "v1" else variant
        case "aarch64" | "arm64":
            # arm64 without a variant means v8, so both spellings must compare equal.
            if variant in ("8", "v8", "v8.0"):
                variant = ""
            elif variant in ("9", "9.0", "v9.0"):
                variant = "v9"
            return "arm64", variant
        case "armhf":
            return "arm", "v7"
        case "armel":
            return "arm", "v6"
        case "arm":
            if variant in ("", "7"):
                return "arm", "v7"
            if variant in ("5", "6", "8"):
                return "arm", "v" + variant
            return "arm", variant
    return arch, variant


def _quote(text: str) -> str:
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return f"'{shown}'" if len(shown) <= 60 else f"'{shown[:60]}...'"  # one short ERROR line, whatever the input


@dataclass(frozen=True, slots=True)
class Platform:
    """An `os/architecture[/variant]`, normalised (containerd rules). `variant` is "" when there is none."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str, *, source: str = "--platform") -> Platform:
        """Parse `os[/arch[/variant]]` or a bare `arch`, case-insensitive, as containerd's platforms.Parse.

        One word is an OS when it is a known one (its architecture is DEFAULT_ARCHITECTURE), otherwise an
        architecture on DEFAULT_OS (`arm64` is linux/arm64, `armhf` linux/arm/v7). `source` names the input
        in error messages.
        """
        where = f"{source} {_quote(text)}"
        parts = text.split("/")
        if text == "" or len(parts) > 3 or "" in parts:
            raise ValidationError(f"Invalid {where}: expected os[/arch[/variant]].", _SHAPE_HINT)
        if len(parts) == 1 and _normalise_os(text) not in VALID_OS:
            arch, variant = _normalise_arch(text, "")
            if arch not in VALID_ARCHITECTURES:
                raise ValidationError(
                    f"{_quote(text)} is not a valid OS or architecture in {where}.",
                    f"{_SHAPE_HINT} Valid operating systems: {', '.join(VALID_OS)}; architectures: "
                    f"{', '.join(VALID_ARCHITECTURES)}.")
            return cls(DEFAULT_OS, arch, variant)
        os = parts[0]
        arch = parts[1] if len(parts) > 1 else DEFAULT_ARCHITECTURE
        variant = parts[2] if len(parts) > 2 else ""
        return cls._checked(os, arch, variant, where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Platform:
        """Read `{"os", "architecture", "variant"?}` (ACR's JSON shape; `os` may be `Linux`)."""
        hint = 'Store a platform as {"os": "linux", "architecture": "amd64"} with an optional "variant".'
        if not isinstance(data, Mapping):
            raise ValidationError(f"Invalid platform {data!r}: expected an object.", hint)
        fields = {key: data.get(key) for key in ("os", "architecture")}
        fields["variant"] = data.get("variant") or ""
        for key, value in fields.items():
            if not isinstance(value, str):
                problem = "is not a string" if key == "variant" else "is missing or not a string"
                raise ValidationError(f"Invalid platform {dict(data)!r}: {key!r} {problem}.", hint)
        os, arch, variant = str(fields["os"]), str(fields["architecture"]), str(fields["variant"])
        where = "platform " + _quote("/".join(part for part in (os, arch, variant) if part))
        return cls._checked(os, arch, variant, where)

    @classmethod
    def _checked(cls, os: str, arch: str, variant: str, where: str) -> Platform:
        normal_os = _normalise_os(os)
        if normal_os not in VALID_OS:
            raise ValidationError(f"{_quote(os)} is not a valid OS in {where}.",
                                  f"Valid operating systems: {', '.join(VALID_OS)}.")
        normal_arch, normal_variant = _normalise_arch(arch, variant)
        if normal_arch not in VALID_ARCHITECTURES:
            raise ValidationError(
                f"{_quote(arch)} is not a valid architecture in {where}.",
                f"Valid architectures: {', '.join(VALID_ARCHITECTURES)} "
                f"(also accepted: {', '.join(ARCHITECTURE_ALIASES)}).",
            )
        if normal_variant and not _VARIANT.fullmatch(normal_variant):
            raise ValidationError(f"{_quote(variant)} is not a valid variant in {where}.",
                                  "Use a variant such as v6, v7 or v8, or leave it out.")
        return cls(normal_os, normal_arch, normal_variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def to_dict(self) -> dict[str, str]:
        """`{"os", "architecture"}`, plus `"variant"` only when there is one."""
        data = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            data["variant"] = self.variant
        return data

    def normalized(self) -> Platform:
        """The same platform under containerd's rules, without validation (works on any values)."""
        arch, variant = _normalise_arch(self.architecture, self.variant)
        return Platform(_normalise_os(self.os), arch, variant)

    def matches(self, other: Platform) -> bool:
        """containerd's OnlyStrict: equal OS, architecture and variant after normalisation; no fallbacks."""
        return self.normalized() == other.normalized()


DEFAULT_PLATFORM = Platform(DEFAULT_OS, DEFAULT_ARCHITECTURE)


def is_attestation(descriptor: Mapping[str, Any]) -> bool:
    """True for BuildKit attestation entries of an index (`unknown/unknown`, or annotated as such)."""
    annotations = descriptor.get("annotations")
    if isinstance(annotations, Mapping) and annotations.get(ATTESTATION_ANNOTATION) == ATTESTATION_TYPE:
        return True
    platform = descriptor.get("platform")
    return (isinstance(platform, Mapping) and platform.get("os") == "unknown"
            and platform.get("architecture") == "unknown")


def descriptor_platform(descriptor: Mapping[str, Any]) -> Platform | None:
    """The normalised platform of an index entry; None if it has none, is malformed, or is an attestation.

    Registry data is never validated against the known lists: an unknown architecture simply matches
    nothing.
    """
    if is_attestation(descriptor):
        return None
    platform = descriptor.get("platform")
    if not isinstance(platform, Mapping):
        return None
    os, arch, variant = platform.get("os"), platform.get("architecture"), platform.get("variant") or ""
    if not isinstance(os, str) or not isinstance(arch, str) or not isinstance(variant, str):
        return None
    return Platform(os, arch, variant).normalized()


def select_manifest(index: Mapping[str, Any], wanted: Platform) -> dict[str, Any] | None:
    """The first entry of an OCI index / Docker manifest list whose platform matches `wanted` (OnlyStrict).

    Skips attestation entries and tolerates malformed ones; returns None when nothing matches.
    """
    manifests = index.get("manifests") if isinstance(index, Mapping) else None
    if not isinstance(manifests, list):
        return None
    target = wanted.normalized()
    for descriptor in manifests:
        if not isinstance(descriptor, dict):
            continue
        platform = descriptor_platform(descriptor)
        if platform is not None and platform == target:
            return descriptor
    return None

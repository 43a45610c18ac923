"""Which registries acrtask reaches over plain HTTP (and builders without TLS verification): the one rule.

A registry is insecure when it is this machine (loopback, as Docker allows for 127.0.0.0/8) or is listed in
ACRTASK_INSECURE_REGISTRIES=host[:port],...; a bare `host` entry covers every port of that host, a
`host:port` entry only that port. Pure: the environment is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from acrtask.reference import ImageRef, host_of

INSECURE_ENV = "ACRTASK_INSECURE_REGISTRIES"


def from_env(environ: Mapping[str, str]) -> frozenset[str]:
    """The listed entries, lower-cased."""
    return normalised(environ.get(INSECURE_ENV, "").split(","))


def normalised(entries: Iterable[str]) -> frozenset[str]:
    return frozenset(item.strip().lower() for item in entries if item.strip())


def is_listed(registry: str, listed: frozenset[str]) -> bool:
    """A `host` entry covers every port of that host; a `host:port` entry only that port."""
    registry = registry.lower()
    return registry in listed or host_of(registry) in listed


def is_insecure(ref: ImageRef, listed: frozenset[str], *, loopback: bool = True) -> bool:
    """Whether `ref`'s registry is reached over plain HTTP: loopback (unless `loopback` is off) or listed,
    by its name or by its API host (docker.io's is registry-1.docker.io)."""
    return (loopback and ref.is_loopback) or is_listed(ref.registry, listed) or is_listed(ref.api_host, listed)


def insecure_registries(refs: Iterable[ImageRef], environ: Mapping[str, str]) -> frozenset[str]:
    """The registries (`host:port`, as named) of `refs` that are insecure under `environ`."""
    listed = from_env(environ)
    return frozenset(ref.registry for ref in refs if is_insecure(ref, listed))


def is_chosen(ref: ImageRef, registries: frozenset[str]) -> bool:
    """Whether `ref` is on one of `registries`, a set `insecure_registries` already chose (exact names), or
    is loopback: what a build spec's `insecure_registries` means."""
    return ref.is_loopback or ref.registry.lower() in normalised(registries)

"""Talking to container registries: tag digests, platform digests, auth, retries. All HTTP lives here.

The names below are loaded on first use (PEP 562), so that importing one small module of the package
(`acrtask.registry.credentials` for `task credential`, say) does not import httpx and the client: every
command imports the CLI's modules, and most never talk to a registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acrtask.registry.client import CheckKey, RegistryClient, Resolved
    from acrtask.registry.copy import CopyResult
    from acrtask.registry.credentials import Credentials, DockerCredentials, GivenCredentials
    from acrtask.registry.health import RateLimit
    from acrtask.registry.rules import Policy
    from acrtask.registry.sync import BlockingRegistryClient, copy_sync, resolve_sync

_MODULE_OF = {
    "BlockingRegistryClient": "sync", "copy_sync": "sync", "resolve_sync": "sync",
    "CheckKey": "client", "RegistryClient": "client", "Resolved": "client",
    "CopyResult": "copy",
    "Credentials": "credentials", "DockerCredentials": "credentials", "GivenCredentials": "credentials",
    "RateLimit": "health",
    "Policy": "rules",
}

__all__ = [  # as _MODULE_OF (a test checks they agree)
    "BlockingRegistryClient",
    "CheckKey",
    "CopyResult",
    "Credentials",
    "DockerCredentials",
    "GivenCredentials",
    "Policy",
    "RateLimit",
    "RegistryClient",
    "Resolved",
    "copy_sync",
    "resolve_sync",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

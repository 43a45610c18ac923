"""Talking to container registries: tag digests, platform digests, auth, retries. All HTTP lives here."""

from acrtask.registry.client import CheckKey, RegistryClient, Resolved
from acrtask.registry.copy import CopyResult
from acrtask.registry.credentials import Credentials, DockerCredentials, GivenCredentials
from acrtask.registry.health import RateLimit
from acrtask.registry.rules import Policy
from acrtask.registry.sync import BlockingRegistryClient, copy_sync, resolve_sync

__all__ = [
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

"""Talking to container registries: tag digests, platform digests, auth, retries. All HTTP lives here."""

from acrtask.registry.client import CheckKey, RegistryClient, Resolved
from acrtask.registry.credentials import Credentials, DockerCredentials
from acrtask.registry.sync import BlockingRegistryClient, resolve_sync
from acrtask.registry.transport import Policy, RateLimit

__all__ = [
    "BlockingRegistryClient",
    "CheckKey",
    "Credentials",
    "DockerCredentials",
    "Policy",
    "RateLimit",
    "RegistryClient",
    "Resolved",
    "resolve_sync",
]

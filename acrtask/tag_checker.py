"""The registry client as watch sees it (`watch.checks.TagChecker`): base tags in, digests out.

An adapter between the two layers: watch speaks of `BaseKey`s and knows no registry client; the client
speaks of `ImageRef`s and knows nothing of watch.
"""

from __future__ import annotations

from typing import Any

from acrtask.platform import DEFAULT_PLATFORM, Platform
from acrtask.triggers import BaseKey


class RegistryTagChecker:
    """The watch loop's view of the registry client: one HEAD per tag, platform digests on demand."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def digests(self, keys: list[BaseKey]) -> dict[BaseKey, str | Exception]:
        results = self.client.check_many(keys)
        return {key: (r if isinstance(r, Exception) else r.digest) for key, r in ((key, results[key]) for key in keys)}

    def platform_digest(self, key: BaseKey, digest: str, platform: Platform | None) -> str | None:
        return self.client.platform_digest(key, digest, platform or DEFAULT_PLATFORM)

    def cap_circuit(self, seconds: float) -> None:
        self.client.cap_circuit(seconds)

"""What `acrtask builder add | list | remove | check` do with build endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from acrtask.builders.endpoint import Endpoint, Engine, check_name
from acrtask.builders.pool import Pool
from acrtask.builders.remote import Probe
from acrtask.endpoint_status import EndpointStatus
from acrtask.endpoints import EndpointStore
from acrtask.errors import AcrTaskError, NotFoundError, ValidationError
from acrtask.platform import DEFAULT_PLATFORM, Platform


class EndpointService:
    def __init__(self, store: EndpointStore, pool: Pool, probe: Callable[[Endpoint], Probe]) -> None:
        self.store = store
        self.pool = pool
        self.probe = probe

    def add(self, name: str, url: str, engine: str, max_concurrent: int, platforms: Sequence[str],
            identity: str | None = None, tls_dir: str | None = None) -> Endpoint:
        """Store a new endpoint. Without platforms, the endpoint is asked which one it builds."""
        check_name(name)
        try:
            kind = Engine(engine.strip().lower())
        except ValueError:
            raise ValidationError(f"Unknown engine {engine!r}.", f"Use one of: {', '.join(Engine)}.") from None
        if identity is not None:
            identity = str(Path(identity).expanduser().resolve())
        if tls_dir is not None:
            tls_dir = str(Path(tls_dir).expanduser().resolve())
        parsed = tuple(dict.fromkeys(Platform.parse(p) for p in platforms))
        endpoint = Endpoint(name, url, kind, max_concurrent, parsed or (DEFAULT_PLATFORM,),
                            identity, tls_dir)
        if not parsed:
            probe = self.probe(endpoint)
            if not probe.ok or not probe.platforms:
                raise AcrTaskError(f"Cannot ask the build endpoint {endpoint.describe()} which platform it builds: "
                                   f"{probe.detail}.", "Start it, or pass --platform to add it without asking.")
            endpoint = Endpoint(name, url, kind, max_concurrent, probe.platforms, identity, tls_dir)
        return self.store.add(endpoint)

    def all(self) -> list[Endpoint]:
        return self.store.load()

    def remove(self, name: str) -> Endpoint:
        return self.store.remove(name)

    def check(self, names: Sequence[str] = ()) -> list[EndpointStatus]:
        """Ask the endpoints (all, or those named) now, in parallel; their state afterwards."""
        endpoints = self.pool.endpoints()
        unknown = sorted(set(names) - {e.name for e in endpoints})
        if unknown:
            raise NotFoundError(f"The build endpoint '{unknown[0]}' could not be found.",
                                "Run 'acrtask builder list' to see the endpoints there are.")
        chosen = [e for e in endpoints if not names or e.name in names]
        if chosen:
            with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as workers:
                list(workers.map(self.pool.check, chosen))
        return [status for status in self.pool.status() if status.name in {e.name for e in chosen}]

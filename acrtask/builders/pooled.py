"""A Builder that runs each build on the pool: take a slot, build there, move on if the endpoint is gone.

An endpoint that does not answer before the build started there is marked down and the build is
placed on another one (as often as there are endpoints to try, within the run's timeout). One
that stops answering during the build ends the run Failed, with the endpoint named; watch runs a
triggered run once more (watch/requeue.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from acrtask.builders.base import BuildResult, BuildSpec
from acrtask.builders.endpoint import Endpoint
from acrtask.builders.pool import Pool
from acrtask.builders.remote import EndpointLostError, EndpointUnavailableError, RemoteEngine
from acrtask.errors import BuildTimeoutError

__all__ = ["PooledBuilder"]

EngineFactory = Callable[[Endpoint, Mapping[str, str] | None], RemoteEngine]


class PooledBuilder:
    name = "a build endpoint"

    def __init__(self, pool: Pool, engine_for: EngineFactory, env: Mapping[str, str] | None = None, *,
                 on_placed: Callable[[Endpoint], None] = lambda endpoint: None,
                 on_lost: Callable[[Endpoint], None] = lambda endpoint: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.engine_for = engine_for
        self.env = env
        self.on_placed = on_placed
        self.on_lost = on_lost
        self.clock = clock

    def available(self) -> bool:
        return bool(self.pool.endpoints())

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult:
        platform = spec.platform
        deadline = None if spec.timeout is None else self.clock() + spec.timeout
        while True:
            lease = self.pool.acquire(platform, cancel, deadline, log)
            endpoint = lease.endpoint
            try:
                self.on_placed(endpoint)
                log(f"Building on {endpoint.describe()}, slot {lease.slot + 1} of {endpoint.max_concurrent}.")
                return self.engine_for(endpoint, self.env).build(self._left(spec, deadline), log, cancel)
            except EndpointUnavailableError as exc:
                self.pool.mark_down(endpoint, exc.detail)
                log(f"The build endpoint {endpoint.name} did not answer before the build started ({exc.detail}); "
                    "placing the build on another endpoint.")
            except EndpointLostError as exc:
                self.pool.mark_down(endpoint, exc.detail)
                self.on_lost(endpoint)
                raise
            finally:
                lease.release()

    def _left(self, spec: BuildSpec, deadline: float | None) -> BuildSpec:
        """`spec` with what is left of its timeout after waiting for a slot."""
        if deadline is None:
            return spec
        left = deadline - self.clock()
        if left <= 0:
            raise BuildTimeoutError(f"The run's {spec.timeout:g} s timeout passed while it waited for a build "
                                    "endpoint.", "Add endpoints or slots, or allow more time with --timeout.")
        return replace(spec, timeout=left)

"""The pool of build endpoints: which endpoint takes the next build, and which ones are down.

- **Slots** are lock files, `slots/NAME.N.lock` under acrtask's home: a build holds an exclusive
  flock on one for as long as it runs. So `task run` in several shells and one `watch` together
  never put more builds on an endpoint than its `maxConcurrent`, and a process that dies frees its
  slots with it. Choosing happens under one more lock, so two processes never pick from a stale count.
- **Choice**: among endpoints that serve the build's platform and are not down, the least busy one
  with a free slot (busy = slots held, by any process); ties go to the one added first.
- **EndpointHealth** is this process's view: an endpoint is asked (`Probe`) before its first use, and after
  a build on it fails; one that does not answer is down and asked again after a backoff that doubles
  (5 s, 10 s, ... up to 5 minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acrtask.builders.endpoint import Endpoint
from acrtask.builders.remote import Probe
from acrtask.endpoint_status import EndpointStatus
from acrtask.endpoints import EndpointStore
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError
from acrtask.files import HeldLock, exclusive_lock, try_lock
from acrtask.platform import Platform

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "EndpointHealth", "Lease", "Pool", "SlotFiles"]

BACKOFF_MIN = 5.0
BACKOFF_MAX = 300.0
UNAVAILABLE_WAIT = 300.0  # how long a build waits for any endpoint of its platform to answer
_POLL = 0.2


@dataclass
class EndpointHealth:
    up: bool | None = None  # None: not asked yet
    detail: str = ""
    failures: int = 0
    retry_at: float = 0.0

    def down(self, detail: str, now: float) -> None:
        self.up, self.detail = False, detail
        self.retry_at = now + min(BACKOFF_MAX, BACKOFF_MIN * 2 ** self.failures)
        self.failures += 1

    def answered(self, detail: str) -> None:
        self.up, self.detail, self.failures, self.retry_at = True, detail, 0, 0.0


@dataclass
class Lease:
    endpoint: Endpoint
    slot: int
    lock: HeldLock = field(repr=False)

    def release(self) -> None:
        self.lock.release()


class SlotFiles:
    """Slots as lock files, shared by every acrtask process of one home."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, endpoint: Endpoint, slot: int) -> Path:
        return self.folder / f"{endpoint.name}.{slot}.lock"

    def _choosing(self) -> HeldLock:
        return exclusive_lock(self.folder / "choose.lock")

    def busy(self, endpoints: list[Endpoint]) -> dict[str, int]:
        found = {}
        with self._choosing():
            for endpoint in endpoints:
                busy, lease = self._scan(endpoint)
                if lease is not None:
                    lease.release()
                found[endpoint.name] = busy
        return found

    def _scan(self, endpoint: Endpoint) -> tuple[int, Lease | None]:
        """(slots held by others, one free slot now held by us or None)."""
        busy, lease = 0, None
        for slot in range(endpoint.max_concurrent):
            lock = try_lock(self._path(endpoint, slot))
            if lock is None:
                busy += 1
            elif lease is None:
                lease = Lease(endpoint, slot, lock)
            else:
                lock.release()
        return busy, lease

    def take(self, endpoints: list[Endpoint]) -> Lease | None:
        """A slot on the least busy of `endpoints` that has one free (first added wins a tie)."""
        with self._choosing():
            best: tuple[int, int, Lease] | None = None
            for order, endpoint in enumerate(endpoints):
                busy, lease = self._scan(endpoint)
                if lease is None:
                    continue
                if best is None or (busy, order) < best[:2]:
                    if best is not None:
                        best[2].release()
                    best = (busy, order, lease)
                else:
                    lease.release()
            return best[2] if best else None


class Pool:
    """Endpoints from the store (re-read when it changes), their health in this process, and their slots."""

    def __init__(self, store: EndpointStore, slots: SlotFiles, probe: Callable[[Endpoint], Probe], *,
                 clock: Callable[[], float] = time.monotonic, on_event: Callable[[str], None] | None = None,
                 unavailable_wait: float = UNAVAILABLE_WAIT) -> None:
        self.store, self.slots, self._probe, self.clock = store, slots, probe, clock
        self.on_event = on_event or (lambda message: None)
        self.unavailable_wait = unavailable_wait
        self._lock = threading.Lock()
        self._probing: dict[str, threading.Lock] = {}
        self._health: dict[str, EndpointHealth] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._endpoints: list[Endpoint] = []

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            stamp = self.store.stamp()
            if stamp != self._stamp:
                self._endpoints, self._stamp = self.store.load(), stamp
            return list(self._endpoints)

    def total_slots(self) -> int:
        return sum(e.max_concurrent for e in self.endpoints())

    def health(self, name: str) -> EndpointHealth:
        with self._lock:
            return self._health.setdefault(name, EndpointHealth())

    # -- health -----------------------------------------------------------------------------------------

    def check(self, endpoint: Endpoint) -> Probe:
        """Ask the endpoint now (one asker per endpoint at a time) and record the answer."""
        with self._lock:
            probing = self._probing.setdefault(endpoint.name, threading.Lock())
        with probing:
            probe = self._probe(endpoint)
            if probe.ok:
                self.mark_up(endpoint, probe.detail)
            else:
                self.mark_down(endpoint, probe.detail)
            return probe

    def check_all_in_background(self) -> None:
        """Ask every endpoint once, each on a thread of its own, so their state is known without waiting."""
        for endpoint in self.endpoints():
            threading.Thread(target=self.check, args=(endpoint,), name=f"check-{endpoint.name}", daemon=True).start()

    def mark_up(self, endpoint: Endpoint, detail: str) -> None:
        health = self.health(endpoint.name)
        with self._lock:
            was = health.up
            health.answered(detail)
        if was is False:
            self.on_event(f"Build endpoint {endpoint.name} is up again ({detail}).")

    def mark_down(self, endpoint: Endpoint, detail: str) -> None:
        health = self.health(endpoint.name)
        with self._lock:
            health.down(detail, self.clock())
            wait = health.retry_at - self.clock()
        self.on_event(f"Build endpoint {endpoint.name} is down ({detail}); asking it again in {wait:.0f}s.")

    def _usable(self, endpoint: Endpoint) -> bool:
        """Up, or not asked yet / due for another try and answering now."""
        health = self.health(endpoint.name)
        if health.up:
            return True
        if health.up is False and self.clock() < health.retry_at:
            return False
        return self.check(endpoint).ok

    def status(self) -> list[EndpointStatus]:
        endpoints = self.endpoints()
        busy = self.slots.busy(endpoints)
        now = self.clock()
        found = []
        for e in endpoints:
            health = self.health(e.name)
            state = {None: "unknown", True: "up", False: "down"}[health.up]
            retry = max(0.0, health.retry_at - now) if health.up is False else None
            found.append(EndpointStatus(e.name, str(e.engine), e.url, tuple(str(p) for p in e.platforms),
                                        e.max_concurrent, busy[e.name], state, health.detail, retry))
        return found

    # -- placing a build --------------------------------------------------------------------------------

    def serving(self, platform: Platform) -> list[Endpoint]:
        endpoints = self.endpoints()
        serving = [e for e in endpoints if e.serves(platform)]
        if endpoints and not serving:
            offered = "; ".join(f"{e.name}: {', '.join(str(p) for p in e.platforms)}" for e in endpoints)
            raise BuildError(f"No build endpoint builds for {platform} (the endpoints serve {offered}), so the "
                             "run was not built rather than built for the wrong platform.",
                             f"Add an endpoint for it: acrtask builder add NAME --url URL --platform {platform}.")
        return serving

    def acquire(self, platform: Platform, cancel: threading.Event, deadline: float | None,
                log: Callable[[str], None]) -> Lease:
        """A slot on an up endpoint serving `platform`; waits while all are busy or down.

        Raises BuildCanceledError / BuildTimeoutError (cancel, `deadline` on this clock), and
        BuildError when no endpoint serves the platform or none has answered for `unavailable_wait`.
        """
        said_busy = said_down = False
        down_since: float | None = None
        while True:
            if cancel.is_set():
                raise BuildCanceledError("The build was canceled while it waited for a build endpoint.",
                                         "Run the task again when you are ready.")
            if deadline is not None and self.clock() >= deadline:
                raise BuildTimeoutError("The run's timeout passed while it waited for a build endpoint.",
                                        "Add endpoints or slots, or allow more time with --timeout.")
            serving = self.serving(platform)
            usable = [e for e in serving if self._usable(e)]
            if usable:
                down_since = None
                lease = self.slots.take(usable)
                if lease is not None:
                    return lease
                if not said_busy:
                    log(f"Every slot of the build endpoints for {platform} is taken; waiting for one.")
                    said_busy = True
            else:
                now = self.clock()
                down_since = now if down_since is None else down_since
                reasons = "; ".join(f"{e.name}: {self.health(e.name).detail}" for e in serving)
                if now - down_since >= self.unavailable_wait:
                    raise BuildError(f"No build endpoint for {platform} answered within "
                                     f"{self.unavailable_wait:g}s ({reasons}).",
                                     "Check them with 'acrtask builder check'.")
                if not said_down:
                    log(f"No build endpoint for {platform} answers ({reasons}); waiting for one.")
                    said_down = True
            cancel.wait(_POLL)

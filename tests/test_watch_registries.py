"""The watch loop against registries that misbehave, through the real client (BlockingRegistryClient and
RegistryTagChecker) on httpx.MockTransport: a registry that hangs or rate-limits delays only its own
bases, and a registry that is down is told once when it goes and once when it comes back.

A real registry beside a hanging one is in tests/integration/test_watch.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from acrtask.errors import CircuitOpenError
from acrtask.media import OCI_MANIFEST
from acrtask.registry import BlockingRegistryClient, Policy
from acrtask.registry.health import HostHealth
from acrtask.runs import RunStore
from acrtask.state import Database, StateStore
from acrtask.tag_checker import RegistryTagChecker
from acrtask.watch.loop import Watcher, WatchOptions
from acrtask.watch.retries import retry_delay
from tests.support.fake_registry import digest_of, manifest_body
from tests.support.tasks import NEW, dep, task
from tests.support.watch_fakes import LogLines, RecordingExecutor, ScriptedRegistry, WatchThread, stores

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


BODY = manifest_body("base:1")  # what every fake registry here serves for base:1


async def healthy(request: httpx.Request) -> httpx.Response:
    headers = {"Docker-Content-Digest": digest_of(BODY), "Content-Type": OCI_MANIFEST}
    return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else BODY)


class Registries:
    """Routes requests by host; records each request as it arrives."""

    def __init__(self, **hosts: Handler) -> None:
        self.hosts = {name.replace("_", "."): handler for name, handler in hosts.items()}
        self.seen: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append(host)
        return await self.hosts[host](request)

    def count(self, host: str) -> int:
        return self.seen.count(host)


class Watching(WatchThread):
    """A long-running watch of two tasks on two registries, on its own thread, with the real client."""

    def __init__(self, tmp_path: Path, registries: Registries, sleep: Callable[[float], Awaitable[None]] | None = None,
                 **options: float) -> None:
        state, runs = stores(tmp_path, [task(name, [dep(f"{host}/base:1")])
                                        for name, host in (("app-slow", "slow.example"), ("app-ok", "ok.example"))])
        extra = {"sleep": sleep} if sleep is not None else {}
        self.client = BlockingRegistryClient(transport=httpx.MockTransport(registries), environ={},
                                             insecure=(), **extra)
        self.executor, self.events = RecordingExecutor(runs), LogLines()
        settings = {"poll_min": 3600.0, "poll_max": 3600.0, "retry_first": 0.01, **options}
        super().__init__(Watcher(state, runs, RegistryTagChecker(self.client), self.executor, self.events,
                                 WatchOptions(**settings)))  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)  # stops the watch; it must have exited 0
        finally:
            self.client.close()

    def ran(self) -> list[str]:
        return [name for name, _ in self.executor.order]


def test_a_hanging_registry_delays_only_its_own_bases(tmp_path: Path) -> None:
    release = threading.Event()
    answered: list[str] = []

    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.to_thread(release.wait, 30)  # hangs until the test lets it answer
        answered.append(request.method)
        return await healthy(request)

    registries = Registries(slow_example=hanging, ok_example=healthy)
    try:
        with Watching(tmp_path, registries) as watching:
            watching.wait_until(lambda: "app-ok" in watching.ran(), "the healthy registry's base to trigger its task")
            # In that order: the slow registry had been asked, had not answered, and its task had not run.
            assert registries.count("slow.example") >= 1 and answered == []
            assert watching.ran() == ["app-ok"]
            release.set()
            watching.wait_until(lambda: "app-slow" in watching.ran(), "the slow registry's base, once it answers")
    finally:
        release.set()
    assert watching.ran() == ["app-ok", "app-slow"]


def test_a_registry_answering_429_with_retry_after_delays_only_its_own_bases(tmp_path: Path) -> None:
    pauses: list[float] = []
    paused = threading.Event()
    resume = threading.Event()

    async def sleep(seconds: float) -> None:  # the client's sleep: only the rate-limited registry waits
        pauses.append(seconds)
        paused.set()
        await asyncio.to_thread(resume.wait, 30)

    async def limited(request: httpx.Request) -> httpx.Response:
        if not resume.is_set():
            return httpx.Response(429, headers={"Retry-After": "20"})
        return await healthy(request)

    registries = Registries(slow_example=limited, ok_example=healthy)
    try:
        with Watching(tmp_path, registries, sleep=sleep) as watching:
            watching.wait_until(lambda: "app-ok" in watching.ran() and paused.is_set(),
                       "the healthy base's run while the other registry waits out its Retry-After")
            assert watching.ran() == ["app-ok"] and not resume.is_set()
            resume.set()
            watching.wait_until(lambda: "app-slow" in watching.ran(),
                                "the rate-limited registry's base, after its pause")
    finally:
        resume.set()
    assert pauses[0] == pytest.approx(20.0, abs=1.0)  # Retry-After honoured, for that registry alone
    assert watching.ran() == ["app-ok", "app-slow"]


def test_a_registry_that_is_down_is_told_once_when_it_goes_and_once_when_it_comes_back(tmp_path: Path) -> None:
    up = threading.Event()

    async def flaky(request: httpx.Request) -> httpx.Response:
        return await healthy(request) if up.is_set() else httpx.Response(503)

    async def instant(seconds: float) -> None:  # the client's retries do not wait
        return None

    registries = Registries(slow_example=flaky, ok_example=healthy)
    with Watching(tmp_path, registries, sleep=instant, poll_min=0.2, poll_max=0.2) as watching:
        # 4 tries in the first check, 1 more opens the circuit, then probes as its (capped) pauses end.
        watching.wait_until(lambda: registries.count("slow.example") >= 8, "checks of the registry that is down")
        up.set()
        watching.wait_until(lambda: "app-slow" in watching.ran(), "the task on the registry once it is back")
    about = [line for line in watching.events.lines if "slow.example" in line and not line.startswith("Schedule:")]
    assert len(about) == 3, about  # down, back, and the queued run
    assert about[0].startswith("ERROR: Registry slow.example cannot be checked: ")
    assert "503 Service Unavailable" in about[0] or "is failing" in about[0]
    assert about[1] == "Registry slow.example is back: its tags are checked again."
    assert about[2].startswith("Queued run")
    assert not any(line.startswith("Check of") for line in watching.events.lines)


# -- what bounds recovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("poll_min", "fast", "expected"), [
    (600.0, 1200.0, 300.0), (60.0, 120.0, 30.0), (5.0, 30.0, 2.5), (600.0, 30.0, 15.0)])
def test_the_circuit_cap_stays_under_both_poll_intervals(poll_min: float, fast: float, expected: float) -> None:
    assert WatchOptions(poll_min=poll_min, poll_max=poll_min * 2, fast_interval=fast).retry_max == expected


@pytest.mark.parametrize(("fast", "expected"), [(False, 300.0), (True, 15.0)])
def test_a_failed_tag_is_retried_under_its_own_poll_interval(fast: bool, expected: float) -> None:
    import random

    from acrtask.triggers import BaseKey
    from acrtask.watch.cadence import PollSchedule
    from acrtask.watch.tags import TagBook

    key = BaseKey("r.example", "app", "1")
    cadence = PollSchedule(frozenset({"r.example"}) if fast else frozenset(), 30.0, (600.0, 3600.0),
                           random.Random(1))
    cadence.update([key], [], {}, now=0.0)
    book = TagBook(cadence, retry_first=5.0, retry_cap=300.0, retry_early=True)
    for _ in range(20):  # long enough for the backoff to reach its cap
        book.failed(key, OSError(24, "Too many open files"), None, now=0.0)
    assert book.next_check[key] == expected


def test_watch_caps_the_registry_circuit_at_its_retry_cap(tmp_path: Path) -> None:
    registry = ScriptedRegistry(NEW)
    db = Database(tmp_path / "state.db")
    runs = RunStore(db, tmp_path / "runs")
    watcher = Watcher(StateStore(db), runs, registry, RecordingExecutor(runs), LogLines(),
                      WatchOptions(poll_min=60, poll_max=120, fast_interval=90))
    watcher.stop()  # set up, then stop at once
    assert watcher.run() == 0
    assert registry.circuit_cap == 30.0


def test_the_circuit_pause_never_passes_its_cap_even_with_jitter() -> None:
    health = HostHealth("h", Policy(circuit_threshold=1, circuit_base=15, circuit_cap=20), random=lambda: 1.0)
    health.failed(0, "503")
    assert health.open_until == 15 * 1.25
    health.admit(100)  # the probe
    health.failed(100, "503")
    assert health.open_until == 100 + 20  # 30 * 1.25 capped


@pytest.mark.parametrize(("error", "failures", "expected"), [
    (OSError(24, "Too many open files"), 1, 5.0),
    (OSError(24, "Too many open files"), 3, 20.0),
    (OSError(28, "No space left on device"), 10, 300.0),  # capped
    (CircuitOpenError("down", "", retry_after=42.0), 1, 42.0),  # not before the circuit lets a probe through
    (CircuitOpenError("down", "", retry_after=900.0), 1, 300.0),
])
def test_retry_delay(error: object, failures: int, expected: float) -> None:
    assert retry_delay(error, failures, first=5.0, cap=300.0) == expected


def test_tags_that_met_the_circuit_while_its_probe_succeeded_are_checked_again_at_once_quietly() -> None:
    import random

    from acrtask.triggers import BaseKey
    from acrtask.watch.cadence import PollSchedule
    from acrtask.watch.checks import CheckResult
    from acrtask.watch.tags import TagBook

    keys = [BaseKey("r.example", "app", str(n)) for n in range(3)]
    cadence = PollSchedule(frozenset(), 30.0, (600.0, 3600.0), random.Random(1))
    cadence.update(keys, [], {}, now=0.0)
    book = TagBook(cadence, retry_first=5, retry_cap=300, retry_early=True)
    book.watch(keys, (), now=0.0)
    batch = book.due(0.0, keys, busy=())["r.example"]
    circuit = CircuitOpenError("r.example is failing", "", retry_after=30.0)
    result = CheckResult("r.example", batch, {keys[0]: NEW, keys[1]: circuit, keys[2]: circuit}, {})
    answered, lines = book.record(result, keys, now=100.0)
    assert [key for key, _, _ in answered] == [keys[0]] and lines == []
    assert book.next_check[keys[1]] == book.next_check[keys[2]] == 100.0  # the probe closed the circuit
    assert book.next_check[keys[0]] >= 700.0  # the next poll

"""Placing builds on endpoints: slots as lock files, least busy first, platforms, health and backoff, and
the failover of PooledBuilder. The engines here only fail (fault injection); real builds on real podman
endpoints are in tests/integration/test_builders_pool_real.py."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask.builders.base import BuildSpec
from acrtask.builders.endpoint import Endpoint
from acrtask.builders.pool import BACKOFF_MAX, BACKOFF_MIN, EndpointHealth, Pool, SlotFiles
from acrtask.builders.pooled import PooledBuilder
from acrtask.builders.remote import EndpointLostError, EndpointUnavailableError, Probe
from acrtask.endpoints import EndpointStore
from acrtask.errors import BuildCanceledError, BuildError, BuildTimeoutError
from acrtask.platform import Platform
from tests.support.builds import build_spec

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


def ep(name: str, slots: int = 2, *platforms: Platform) -> Endpoint:
    return Endpoint(name, f"tcp://127.0.0.1:{1000 + len(name)}", max_concurrent=slots, platforms=platforms or (AMD64,))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Prober:
    """Answers for each endpoint as told; counts the questions."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.asked: list[str] = []

    def __call__(self, endpoint: Endpoint) -> Probe:
        self.asked.append(endpoint.name)
        if endpoint.name in self.down:
            return Probe(False, "connection refused")
        return Probe(True, "podman 4.3.1", (AMD64,))


def make_pool(tmp_path: Path, endpoints: list[Endpoint], prober: Prober | None = None,
              clock: Clock | None = None, **options: object) -> Pool:
    store = EndpointStore(tmp_path / "builders.toml")
    for endpoint in endpoints:
        store.add(endpoint)
    return Pool(store, SlotFiles(tmp_path / "slots"), prober or Prober(), clock=clock or Clock(), **options)


def test_slots_are_exclusive_across_holders_and_go_least_busy_first(tmp_path: Path) -> None:
    one, two = ep("one"), ep("two")
    slots = SlotFiles(tmp_path / "slots")
    leases = [slots.take([one, two]) for _ in range(4)]
    assert [(lease.endpoint.name, lease.slot) for lease in leases] == [("one", 0), ("two", 0), ("one", 1), ("two", 1)]
    assert slots.take([one, two]) is None  # four slots, four holders
    assert slots.busy([one, two]) == {"one": 2, "two": 2}
    leases[2].release()
    again = slots.take([one, two])
    assert (again.endpoint.name, again.slot) == ("one", 1)
    # Another SlotFiles on the same folder is another process's view: it sees the same held slots.
    assert SlotFiles(tmp_path / "slots").take([one, two]) is None


def test_a_build_goes_only_to_an_endpoint_of_its_platform(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, [ep("amd", 1), ep("arm", 1, ARM64)])
    lease = pool.acquire(ARM64, threading.Event(), None, print)
    assert lease.endpoint.name == "arm"
    with pytest.raises(BuildError, match="No build endpoint builds for linux/arm/v7") as caught:
        pool.acquire(Platform.parse("linux/arm/v7"), threading.Event(), None, print)
    assert "amd: linux/amd64; arm: linux/arm64" in str(caught.value)
    assert "not built rather than built for the wrong platform" in str(caught.value)


def test_an_endpoint_is_asked_before_its_first_use_and_a_down_one_is_skipped(tmp_path: Path) -> None:
    prober = Prober(down={"one"})
    events: list[str] = []
    pool = make_pool(tmp_path, [ep("one"), ep("two")], prober, on_event=events.append)
    assert pool.acquire(AMD64, threading.Event(), None, print).endpoint.name == "two"
    assert pool.acquire(AMD64, threading.Event(), None, print).endpoint.name == "two"
    assert prober.asked == ["one", "two"]  # once each: "two" answered, "one" waits for its backoff
    assert events == ["Build endpoint one is down (connection refused); asking it again in 5s."]
    assert [(s.name, s.state, s.busy) for s in pool.status()] == [("one", "down", 0), ("two", "up", 2)]


def test_backoff_doubles_to_its_cap_and_resets_on_an_answer() -> None:
    health = EndpointHealth()
    waits = []
    for _ in range(8):
        health.down("refused", 0.0)
        waits.append(health.retry_at)
    assert waits == [BACKOFF_MIN * 2 ** i for i in range(6)] + [BACKOFF_MAX, BACKOFF_MAX]
    health.answered("podman 4.3.1")
    assert (health.up, health.failures, health.retry_at) == (True, 0, 0.0)


def test_a_down_endpoint_is_asked_again_after_its_backoff(tmp_path: Path) -> None:
    clock, prober = Clock(), Prober(down={"one"})
    events: list[str] = []
    pool = make_pool(tmp_path, [ep("one", 1)], prober, clock, on_event=events.append, unavailable_wait=60.0)
    cancel = threading.Event()
    lines: list[str] = []

    def tick(line: str) -> None:
        lines.append(line)

    # Waiting sleeps on `cancel`; move the clock from another thread until the endpoint answers.
    def advance() -> None:
        while not cancel.is_set() and clock.now < 200:
            clock.now += 1.0
            if clock.now >= 106:
                prober.down.clear()
            cancel.wait(0.01)

    mover = threading.Thread(target=advance)
    mover.start()
    try:
        lease = pool.acquire(AMD64, cancel, None, tick)
    finally:
        cancel.set()
        mover.join(5)
    assert lease.endpoint.name == "one"
    assert prober.asked == ["one", "one"]  # at first use, then once its 5 s were up
    assert lines == ["No build endpoint for linux/amd64 answers (one: connection refused); waiting for one."]
    assert events[-1] == "Build endpoint one is up again (podman 4.3.1)."


def test_when_no_endpoint_answers_the_build_fails_clearly(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, [ep("one"), ep("two")], Prober(down={"one", "two"}), clock, unavailable_wait=0.0)
    with pytest.raises(BuildError, match=r"No build endpoint for linux/amd64 answered within 0s "
                                         r"\(one: connection refused; two: connection refused\)"):
        pool.acquire(AMD64, threading.Event(), None, print)


def test_waiting_for_a_slot_ends_on_cancel_and_on_the_deadline(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, [ep("one", 1)], clock=clock)
    held = pool.acquire(AMD64, threading.Event(), None, print)
    canceled = threading.Event()
    canceled.set()
    with pytest.raises(BuildCanceledError):
        pool.acquire(AMD64, canceled, None, print)
    with pytest.raises(BuildTimeoutError):
        pool.acquire(AMD64, threading.Event(), clock.now, print)
    held.release()


# -- PooledBuilder ----------------------------------------------------------------------------------------


class FailingEngine:
    """An engine that fails the way it is told (never builds anything)."""

    def __init__(self, endpoint: Endpoint, failure: BuildError, calls: list[str]) -> None:
        self.endpoint, self.failure, self.calls = endpoint, failure, calls

    def build(self, spec: BuildSpec, log, cancel: threading.Event):
        self.calls.append(self.endpoint.name)
        raise self.failure


def spec(tmp_path: Path) -> BuildSpec:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return build_spec(tmp_path, images=("reg.example.com/a:1",), timeout=60.0)


def test_an_endpoint_gone_before_the_build_started_sends_it_elsewhere_then_a_real_failure_stays(
        tmp_path: Path) -> None:
    one, two = ep("one"), ep("two")
    pool = make_pool(tmp_path, [one, two])
    calls: list[str] = []
    failures = {"one": EndpointUnavailableError(one, "connection refused"),
                "two": BuildError("podman: the build failed (exit code 1): RUN false.")}
    placed: list[str] = []
    builder = PooledBuilder(pool, lambda endpoint, env: FailingEngine(endpoint, failures[endpoint.name], calls),
                            on_placed=lambda endpoint: placed.append(endpoint.name))
    lines: list[str] = []
    with pytest.raises(BuildError, match="RUN false"):
        builder.build(spec(tmp_path), lines.append, threading.Event())
    assert calls == placed == ["one", "two"]
    assert "The build endpoint one did not answer before the build started (connection refused); placing the " \
           "build on another endpoint." in lines
    assert [(s.name, s.state, s.busy) for s in pool.status()] == [("one", "down", 0), ("two", "up", 0)]


def test_an_endpoint_lost_mid_build_fails_the_run_and_is_recorded(tmp_path: Path) -> None:
    one = ep("one")
    pool = make_pool(tmp_path, [one, ep("two")])
    calls: list[str] = []
    lost: list[str] = []
    failure = EndpointLostError(one, "connection refused", "server probably quit: unexpected EOF")
    builder = PooledBuilder(pool, lambda endpoint, env: FailingEngine(endpoint, failure, calls),
                            on_lost=lambda endpoint: lost.append(endpoint.name))
    with pytest.raises(EndpointLostError) as caught:
        builder.build(spec(tmp_path), print, threading.Event())
    assert calls == lost == ["one"]  # not tried elsewhere: the run fails, watch decides about a retry
    assert str(caught.value).startswith("The build endpoint one (podman at tcp://127.0.0.1:1003) stopped answering "
                                        "during the build (connection refused): server probably quit")
    assert pool.status()[0].state == "down" and pool.status()[0].busy == 0


def test_with_endpoints_a_single_build_goes_to_the_pool_and_a_multi_step_task_stays_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acrtask import wiring
    from acrtask.builders.local import select
    from acrtask.model import StepType
    from acrtask.run_record import RunTrigger
    from tests.support.tasks import task

    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path))
    EndpointStore(tmp_path / "builders.toml").add(ep("one"))
    program = wiring.Program()
    try:
        single = task("single", [])
        multi = replace(single, name="multi", step=replace(single.step, type=StepType.FILE_TASK))
        run = program.run_store.create(single, RunTrigger())
        assert isinstance(program.builder_for(single, run), PooledBuilder)
        assert program.builder_for(multi, run).name == select("auto", {"PATH": os.environ["PATH"]}).name
    finally:
        program.close()

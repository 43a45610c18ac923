"""Runs on build endpoints, end to end: two real `podman system service` endpoints on 127.0.0.1 (each with
its own storage), a real registry, the real `acrtask` CLI. How many builds an endpoint runs at once is
read from /proc (RUN steps that sleep a marked time, below each service's process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acrtask.builders.pool import SlotFiles
from acrtask.endpoints import EndpointStore
from acrtask.state import Database, StateStore
from tests.integration.workbench import Workbench
from tests.support.podman import PodmanService
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


@pytest.fixture
def endpoints() -> Iterator[dict[str, PodmanService]]:
    """Two podman services, `ep1` and `ep2`; always stopped, storage removed."""
    started: dict[str, PodmanService] = {}
    try:
        for name in ("ep1", "ep2"):
            started[name] = PodmanService().start()
        yield started
    finally:
        for service in started.values():
            service.stop()


class Concurrency:
    """Samples each endpoint's running RUN steps (`sleep MARKER`) every 0.1 s, in a bounded thread."""

    def __init__(self, services: dict[str, PodmanService], marker: str) -> None:
        self.services, self.marker = services, marker
        self.peak = dict.fromkeys(services, 0)
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        end = time.monotonic() + 900
        while not self._stop.is_set() and time.monotonic() < end:
            counts = {name: service.build_steps(self.marker) for name, service in self.services.items()}
            for name, count in counts.items():
                self.peak[name] = max(self.peak[name], count)
            self.peak_total = max(self.peak_total, sum(counts.values()))
            self._stop.wait(0.1)

    def __enter__(self) -> Concurrency:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def add_endpoints(bench: Workbench, endpoints: dict[str, PodmanService]) -> None:
    # ep1 says its platform; ep2 is asked which one it builds.
    done = bench.acrtask("builder", "add", "ep1", "--url", endpoints["ep1"].url, "--platform", "linux/amd64")
    assert done.code == 0, done.err
    done = bench.acrtask("builder", "add", "ep2", "--url", endpoints["ep2"].url, "-o", "json")
    assert done.code == 0, done.err
    assert done.json()["platforms"] == ["linux/amd64"] and done.json()["maxConcurrent"] == 2


def tasks_on_base(bench: Workbench, count: int, sleep: str) -> list[str]:
    """`count` tasks on base/os:1, each with a RUN step that sleeps `sleep` seconds."""
    base = bench.image("base/os:1")
    names = []
    for i in range(count):
        name = f"app-{i}"
        ctx = bench.context(name, f"FROM {base}\nRUN sleep {sleep} && echo {name} > /app\n")
        bench.create(name, ctx, f"apps/{name}:1")
        names.append(name)
    return names


def run_all_while_slots_are_held(bench: Workbench, names: list[str], endpoint: str) -> None:
    """The first run of each task from separate processes (`task run --no-wait`), while this process holds
    every slot of `endpoint` as another acrtask process would: each run must wait, then all build."""
    slots = SlotFiles(bench.home / "slots")
    held_endpoint = next(e for e in EndpointStore(bench.home / "builders.toml").load() if e.name == endpoint)
    held = [slots.take([held_endpoint]) for _ in range(held_endpoint.max_concurrent)]
    assert all(held) and slots.take([held_endpoint]) is None
    try:
        for name in names:
            assert bench.acrtask("task", "run", "-n", name, "--no-wait", "-o", "none").code == 0
        waiting = "Every slot of the build endpoints for linux/amd64 is taken; waiting for one."
        wait_for(lambda: all(waiting in bench.log_so_far(name) for name in names), 120,
                 "every run to wait for a slot")
        assert {r["status"] for r in bench.runs()} == {"Running"}
    finally:
        for lease in held:
            if lease is not None:
                lease.release()
    wait_for(lambda: sum(r["status"] == "Succeeded" for r in bench.runs()) == len(names)
             or any(r["status"] in ("Failed", "Error") for r in bench.runs()), 300, "the first runs")
    assert [r["status"] for r in bench.runs()] == ["Succeeded"] * len(names), bench.runs()


def share_first_run(bench: Workbench, names: list[str]) -> None:
    """Run the first task for real, and record the bases it learned for the others (same Dockerfile base),
    so the test spends its builds on the cascade."""
    assert bench.run(names[0]).code == 0
    db = Database(bench.home / "state.db")
    with StateStore(db).transaction() as tx:
        learned = tx.get(names[0]).step.dependencies
        for name in names[1:]:
            tx.record_dependencies(name, learned)
    db.close()


def test_eight_tasks_triggered_by_one_base_update_build_on_both_endpoints_within_their_slots(
        bench: Workbench, endpoints: dict[str, PodmanService]) -> None:
    bench.push_base("base/os:1", "v1")
    add_endpoints(bench, endpoints)
    share_first_run(bench, tasks_on_base(bench, 8, "1.4141"))
    new = bench.push_base("base/os:1", "v2")
    with Concurrency(endpoints, "1.4141") as cascade:
        done = bench.acrtask("task", "watch", "--once", timeout=400)  # --max-concurrent-runs: 2 + 2 slots
    assert done.code == 0, done.err
    assert "Builds go to build endpoints ep1 (2 slots), ep2 (2 slots); up to 4 at once." in done.err

    rebuilt = bench.runs()[1:]
    assert len(rebuilt) == 8
    for run in rebuilt:
        assert run["status"] == "Succeeded" and run["trigger"]["newDigest"] == new
        image = run["outputImages"][0]
        assert image["digest"] == bench.digest(image["repository"], "1")
        assert run["agentPoolName"] in ("ep1", "ep2")
    assert {run["agentPoolName"] for run in rebuilt} == {"ep1", "ep2"}
    assert all(1 <= peak <= 2 for peak in cascade.peak.values()), cascade.peak
    table = bench.acrtask("task", "list-runs", "--top", "8", "-o", "table").out
    assert "AGENT" in table.splitlines()[0] and "ep1" in table and "ep2" in table


def test_with_one_endpoint_stopped_before_the_cascade_everything_builds_on_the_other(
        bench: Workbench, endpoints: dict[str, PodmanService]) -> None:
    bench.push_base("base/os:1", "v1")
    add_endpoints(bench, endpoints)
    endpoints["ep2"].stop()
    check = bench.acrtask("builder", "check", "-o", "json")
    assert check.code == 1
    assert {s["name"]: s["state"] for s in check.json()} == {"ep1": "up", "ep2": "down"}
    assert "1 of 2 build endpoint(s) did not answer (ep2: " in check.err and "connection refused" in check.err

    with Concurrency(endpoints, "1.3131") as first:
        run_all_while_slots_are_held(bench, tasks_on_base(bench, 3, "1.3131"), "ep1")
    assert first.peak["ep1"] <= 2 and first.peak["ep2"] == 0  # three processes of `task run`, two slots
    bench.push_base("base/os:1", "v2")
    done = bench.acrtask("task", "watch", "--once", timeout=300)
    assert done.code == 0, done.err
    runs = bench.runs()
    assert [(r["status"], r["agentPoolName"]) for r in runs] == [("Succeeded", "ep1")] * 6
    assert "Build endpoint ep2 is down (" in done.err


def test_an_endpoint_stopped_during_a_build_fails_that_run_naming_it_and_it_runs_again_on_the_other(
        bench: Workbench, endpoints: dict[str, PodmanService]) -> None:
    bench.push_base("base/os:1", "v1")
    add_endpoints(bench, endpoints)
    marker = "3.2727"
    assert bench.run(tasks_on_base(bench, 1, marker)[0]).code == 0
    bench.push_base("base/os:1", "v2")
    watch = bench.popen("task", "watch", "--once")
    try:
        victim: list[str] = []

        def building() -> bool:
            victim.extend(name for name, service in endpoints.items() if service.build_steps(marker))
            return bool(victim)

        wait_for(building, 120, "the triggered build to run its RUN step")
        endpoints[victim[0]].stop()
        out, err = watch.communicate(timeout=300)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, err  # the run that lost its endpoint ran again and succeeded
    lost, again = bench.runs()[1:]
    other = "ep2" if victim[0] == "ep1" else "ep1"
    assert lost["status"] == "Failed" and lost["agentPoolName"] == victim[0] and lost["agentLost"] is True
    assert lost["runErrorMessage"].startswith(f"The build endpoint {victim[0]} (podman at {endpoints[victim[0]].url})")
    assert "stopped answering during the build" in lost["runErrorMessage"]
    assert again["status"] == "Succeeded" and again["agentPoolName"] == other
    assert again["trigger"] == lost["trigger"]
    assert f"lost its build endpoint {victim[0]}; queued it again as {again['runId']} (once)" in err


def test_a_platform_no_endpoint_serves_is_a_clear_error_at_run_time(bench: Workbench) -> None:
    # The endpoint need not run: the platform is decided before anything is asked of it.
    assert bench.acrtask("builder", "add", "amd1", "--url", "tcp://127.0.0.1:9", "--platform", "linux/amd64").code == 0
    ctx = bench.context("arm", "FROM scratch\nCOPY hello /hello\n", {"hello": "hi\n"})
    bench.create("arm-task", ctx, "apps/arm:1", extra=("--platform", "linux/arm64"))
    done = bench.run("arm-task")
    assert done.code == 1
    assert "No build endpoint builds for linux/arm64 (the endpoints serve amd1: linux/amd64)" in done.err
    run = bench.runs()[0]
    assert run["status"] == "Failed" and "agentPoolName" not in run
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        assert client.head(f"{bench.registry.url}/v2/apps/arm/manifests/1").status_code == 404

"""Many writers on one state database at once, for real: 30 `task create` processes while a watch rebuilds a
task (and records its new base digest) and a `task run` in another process finishes. Nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support.waiting import wait_for
from tests.support.watch_process import WatchProcess

pytestmark = pytest.mark.integration

CREATES = 30


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def recorded_digest(bench: Workbench, task: str) -> str:
    deps = bench.task(task)["step"]["baseImageDependencies"]
    return next(d["digest"] for d in deps if d["type"] == "RunTime")


def test_thirty_creates_a_watch_and_a_run_at_once_lose_nothing(bench: Workbench) -> None:
    bench.push_base("baseimages/node:1", "v1")
    other = bench.push_base("baseimages/tools:1", "t1")
    # The app builds for a few seconds, so that its rebuild by watch overlaps the creates and the other run.
    app = bench.context("app", f"FROM {bench.host}/baseimages/node:1\nRUN sleep 3 && echo app > /app\n")
    manual = bench.context("manual", f"FROM {bench.host}/baseimages/tools:1\nRUN echo manual > /manual\n")
    bench.create("app-task", app, "app:latest")
    bench.create("manual-task", manual, "manual:latest")
    assert bench.run("app-task").code == 0
    moved = bench.push_base("baseimages/node:1", "v2")

    watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h"))
    try:
        wait_for(lambda: len(bench.runs("app-task")) == 2, 90, "watch to queue the rebuild of app-task")
        run = bench.popen("task", "run", "-n", "manual-task", "--no-logs", "-o", "none")
        creates = [bench.popen("task", "create", "-n", f"created-{i:02d}", "-c", str(app), "-t",
                               bench.image(f"created{i}:1"), "-o", "none") for i in range(CREATES)]
        for proc in creates:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        wait_for(lambda: bench.runs("app-task")[-1]["status"] == "Succeeded", 120, "the rebuild to finish")
    finally:
        _, watch_err = watch.stop()
    assert "ERROR" not in watch_err, watch_err

    names = bench.acrtask("task", "list", "--query", "[].name").json()
    assert sorted(names) == sorted(["app-task", "manual-task", *(f"created-{i:02d}" for i in range(CREATES))])
    assert recorded_digest(bench, "app-task") == moved  # watch's run recorded the new digest
    assert recorded_digest(bench, "manual-task") == other  # and the other process's run its own
    runs = bench.runs()
    assert [(r["runId"], r["task"]) for r in runs] == [("ca1", "app-task"), ("ca2", "app-task"), ("ca3", "manual-task")]
    assert all(r["status"] == "Succeeded" for r in runs)

"""az's run commands for real: `task logs` follows a running run to its end, `task run -c -f --target` builds
something else for one run, `list-runs --image` finds the run that pushed what a tag is now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def test_logs_follow_a_running_run_to_its_end(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("slow", f"FROM {bench.host}/base:1\nRUN echo step-one && sleep 4 && echo step-two\n")
    bench.create("slow-task", ctx, "slow:1")
    queued = bench.acrtask("task", "run", "-n", "slow-task", "--no-wait")
    assert queued.code == 0, queued.err
    wait_for(lambda: bench.acrtask("task", "show-run", "--run-id", "ca1").json()["status"] == "Running", 120,
             "the run to start")

    followed = bench.acrtask("task", "logs", "--run-id", "ca1", "--no-format")
    assert followed.code == 0, followed.err
    lines = followed.out.rstrip().splitlines()
    assert lines[0] == "Run ID: ca1, task slow-task: manual run"
    assert "step-two" in followed.out  # printed after the sleep: the command waited for it
    assert lines[-1].startswith("Run ID: ca1 was successful after")
    assert bench.acrtask("task", "show-run", "--run-id", "ca1").json()["status"] == "Succeeded"


def test_run_overrides_and_list_runs_by_image(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    bench.push_base("other:1", "v1")
    ctx = bench.context("app", f"FROM {bench.host}/base:1\n", files={
        "Dockerfile.alt": f"FROM {bench.host}/base:1 AS first\nFROM {bench.host}/other:1 AS second\nFROM first\n"})
    assert bench.acrtask("task", "create", "-n", "app-task", "-r", bench.host, "-c", str(ctx), "-t", "app:v1",
                         "-o", "none").code == 0
    assert bench.run("app-task").code == 0

    done = bench.run("app-task", "-f", "Dockerfile.alt", "--target", "second")
    assert done.code == 0, done.err + done.out
    deps = {d["type"]: d["repository"] for d in bench.task("app-task")["step"]["baseImageDependencies"]}
    assert deps == {"RunTime": "other", "BuildTime": "base"}  # the stage `second` of the other file was built
    assert bench.task("app-task")["step"]["dockerFilePath"] == "Dockerfile"  # the task itself is unchanged

    # app:v1 is now what ca2 pushed: az resolves the tag and finds the run by that digest.
    found = bench.acrtask("task", "list-runs", "-r", bench.host, "-t", "app:v1", "--query", "[].runId")
    assert found.json() == ["ca2"]
    started = bench.acrtask("task", "list-runs", "--run-status", "Started")
    assert (started.code, started.json()) == (0, [])
    missing = bench.acrtask("task", "list-runs", "-r", bench.host, "-t", "app:nope")
    assert missing.code == 3 and missing.err.startswith("ERROR: Could not find image 'app:nope'.")

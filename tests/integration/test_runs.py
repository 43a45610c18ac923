"""`task run` end to end: real buildah builds against a real registry, and what each run records."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import fetch_manifest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def test_two_stage_build_records_its_bases_and_pushes_annotated_images(bench: Workbench) -> None:
    builder_digest = bench.push_base("tools/builder:1", "builder-v1")
    runtime_digest = bench.push_base("baseimages/node:15-alpine", "node-v1")
    ctx = bench.context("app", (
        "ARG REGISTRY=nowhere.invalid\n"
        "FROM $REGISTRY/tools/builder:1 AS build\n"
        "RUN echo built > /out\n"
        "FROM ${REGISTRY}/baseimages/node:15-alpine\n"
        "COPY --from=build /out /out\n"
    ))
    bench.create("app-task", ctx, "app:{{.Run.ID}}", "app:latest", extra=("--arg", f"REGISTRY={bench.host}"))

    done = bench.run("app-task")
    assert done.code == 0, done.err + done.out
    assert done.out.rstrip().splitlines()[-1].startswith("Run ID: ca1 was successful after ")

    deps = {d["type"]: d for d in bench.task("app-task")["step"]["baseImageDependencies"]}
    assert deps["RunTime"]["repository"] == "baseimages/node"
    assert deps["RunTime"]["tag"] == "15-alpine"
    assert deps["RunTime"]["digest"] == runtime_digest == bench.digest("baseimages/node", "15-alpine")
    assert deps["RunTime"]["platformDigest"] == runtime_digest
    assert deps["BuildTime"]["repository"] == "tools/builder"
    assert deps["BuildTime"]["digest"] == builder_digest

    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Succeeded"
    assert run["trigger"] == {"kind": "Manual"}
    pushed = {image["tag"]: image["digest"] for image in run["outputImages"]}
    assert pushed == {"ca1": bench.digest("app", "ca1"), "latest": bench.digest("app", "latest")}
    annotations = fetch_manifest(bench.host, "app", "latest")["annotations"]
    assert annotations["org.opencontainers.image.base.name"] == f"{bench.host}/baseimages/node:15-alpine"
    assert annotations["org.opencontainers.image.base.digest"] == runtime_digest


def test_secret_args_stay_out_of_logs_records_and_output(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("secret", f"FROM {bench.host}/base:1\nARG TOKEN\nRUN echo \"token is $TOKEN\"\n")
    bench.create("secret-task", ctx, "secret:1", extra=("--secret-arg", "TOKEN=hunter2-very-secret"))
    done = bench.run("secret-task")
    assert done.code == 0, done.err
    assert "token is ***" in done.out
    everything = done.out + done.err
    everything += bench.acrtask("task", "logs", "-n", "secret-task").out
    everything += bench.acrtask("task", "show-run", "--run-id", "ca1").out
    everything += "".join(p.read_text() for p in (bench.home / "runs").glob("ca1.*"))
    assert "hunter2-very-secret" not in everything


def test_failing_build_ends_failed_with_the_builders_error(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("broken", f"FROM {bench.host}/base:1\nRUN /bin/sh -c 'echo boom-marker >&2; exit 7'\n")
    bench.create("broken-task", ctx, "broken:1")
    done = bench.run("broken-task")
    assert done.code == 1
    assert done.err.splitlines() == ["Queued a run with ID: ca1", done.err.splitlines()[-1]]
    assert done.err.splitlines()[-1].startswith("ERROR: Run ID: ca1 failed after ")
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Failed"
    assert "exit" in run["runErrorMessage"].lower() or "7" in run["runErrorMessage"]
    assert "boom-marker" in bench.acrtask("task", "logs", "--run-id", "ca1").out
    # A failed run records no dependencies: nothing was built on them.
    assert bench.task("broken-task")["step"].get("baseImageDependencies", []) == []


def test_timeout_ends_timeout(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("slow", f"FROM {bench.host}/base:1\nRUN sleep 60\n")
    bench.create("slow-task", ctx, "slow:1", extra=("--timeout", "3"))
    started = time.monotonic()
    done = bench.run("slow-task")
    assert time.monotonic() - started < 45
    assert done.code == 1
    assert "timed out" in done.err
    assert bench.acrtask("task", "show-run", "--run-id", "ca1").json()["status"] == "Timeout"


def test_a_missing_base_fails_clearly_before_any_build(bench: Workbench) -> None:
    ctx = bench.context("orphan", f"FROM {bench.host}/does/not-exist:1\n")
    bench.create("orphan-task", ctx, "orphan:1")
    done = bench.run("orphan-task")
    assert done.code == 1
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Failed"
    assert "does/not-exist" in run["runErrorMessage"]
    assert "buildah" not in bench.acrtask("task", "logs", "--run-id", "ca1").out  # no build started


def test_a_bad_dockerfile_fails_without_building(bench: Workbench) -> None:
    ctx = bench.context("bad-df", "FROM $NOWHERE\n")
    bench.create("bad-df-task", ctx, "x:1")
    done = bench.run("bad-df-task")
    assert done.code == 1
    assert "NOWHERE" in bench.acrtask("task", "show-run", "--run-id", "ca1").json()["runErrorMessage"]


def test_git_url_context_is_cloned_and_its_commit_recorded(bench: Workbench, tmp_path: Path) -> None:
    bench.push_base("base:1", "v1")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "Dockerfile").write_text(f"FROM {bench.host}/base:1\nCOPY hello /hello\n")
    (repo / "src" / "hello").write_text("hi\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    done = bench.acrtask("task", "create", "-n", "git-task", "-c", f"file://{repo}#main:src",
                         "-t", bench.image("git:1"), "-o", "none")
    assert done.code == 0, done.err
    assert bench.run("git-task").code == 0
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["sourceCommitId"] == commit


def test_run_ids_increase_and_runs_are_listed_newest_first(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("ids", f"FROM {bench.host}/base:1\n")
    bench.create("ids-task", ctx, "ids:1", extra=("--no-push",))
    for _ in range(3):
        assert bench.run("ids-task", "--no-logs", "-o", "none").code == 0
    table = bench.acrtask("task", "list-runs", "-o", "table", "--top", "2").out.splitlines()
    assert [line.split()[0] for line in table[2:]] == ["ca3", "ca2"]
    assert table[0].split()[:3] == ["RUN", "ID", "TASK"]
    logs = bench.acrtask("task", "logs", "-n", "ids-task")
    assert "Run ID: ca3" in logs.err


def _slow_task(bench: Workbench, name: str, seconds: int) -> None:
    # Each test sleeps a different time, so `pgrep` finds only its own leftovers under xdist.
    bench.push_base("base:1", "v1")
    ctx = bench.context(name, f"FROM {bench.host}/base:1\nRUN sleep {seconds}\n")
    bench.create(name, ctx, f"{name}:1")


def _wait_running(bench: Workbench) -> None:
    def started() -> bool:
        runs = bench.runs()
        return bool(runs) and runs[-1]["status"] == "Running" and "sleep" in bench.log_so_far()

    wait_for(started, 60, "the build to start")


def test_ctrl_c_during_task_run_cancels_the_build(bench: Workbench) -> None:
    import signal

    _slow_task(bench, "ctrl-c-task", 61)
    proc = bench.popen("task", "run", "-n", "ctrl-c-task")
    _wait_running(bench)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "was canceled" in err
    assert bench.runs()[-1]["status"] == "Canceled"
    assert subprocess.run(["pgrep", "-f", "sleep 61"], capture_output=True).stdout == b""


def test_cancel_run_from_another_shell(bench: Workbench) -> None:
    _slow_task(bench, "cancel-task", 65)  # not 62: test_watch.py pgreps `sleep 62` at the same time
    proc = bench.popen("task", "run", "-n", "cancel-task")
    _wait_running(bench)
    assert bench.acrtask("task", "cancel-run", "--run-id", "ca1").code == 0
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert bench.acrtask("task", "show-run", "--run-id", "ca1").json()["status"] == "Canceled"
    again = bench.acrtask("task", "cancel-run", "--run-id", "ca1")
    assert again.code == 1 and "already ended (Canceled)" in again.err


def test_no_wait_returns_at_once_and_the_run_completes(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("bg", f"FROM {bench.host}/base:1\n")
    bench.create("bg-task", ctx, "bg:1")
    queued = bench.run("bg-task", "--no-wait")
    assert queued.code == 0
    assert queued.json()["status"] == "Queued"
    wait_for(lambda: bench.runs()[-1]["status"] == "Succeeded", 60, "the run to succeed")


def test_a_secret_in_a_failing_base_name_stays_out_of_the_error(bench: Workbench) -> None:
    ctx = bench.context("secret-from", f"ARG TOKEN\nFROM {bench.host}/${{TOKEN}}/img:1\n")
    bench.create("secret-from-task", ctx, "x:1", extra=("--secret-arg", "TOKEN=hunter2secret"))
    done = bench.run("secret-from-task")
    assert done.code == 1
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Failed"
    assert "***/img:1" in run["runErrorMessage"]
    everything = done.out + done.err + json.dumps(run) + bench.acrtask("task", "logs", "--run-id", "ca1").out
    assert "hunter2secret" not in everything

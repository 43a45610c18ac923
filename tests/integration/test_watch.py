"""`task watch` end to end: real registry, real buildah, real notifications, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.workbench import Workbench
from tests.support import LocalRegistry
from tests.support.procs import marked_processes
from tests.support.waiting import wait_for
from tests.support.watch_process import WatchProcess, app_on_base, start_watch

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def test_a_moved_base_rebuilds_the_app_and_says_why(bench: Workbench) -> None:
    old = app_on_base(bench)
    quiet = bench.acrtask("task", "watch", "--once")
    assert quiet.code == 0, quiet.err
    assert len(bench.runs()) == 1  # nothing pushed: no run

    new = bench.push_base("baseimages/node:1", "v2")
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    runs = bench.runs()
    assert len(runs) == 2
    rebuilt = runs[-1]
    assert rebuilt["status"] == "Succeeded"
    assert rebuilt["trigger"] == {"kind": "BaseImageUpdate", "baseImage": f"{bench.host}/baseimages/node:1",
                                  "oldDigest": old, "newDigest": new}
    assert rebuilt["imageUpdateTrigger"]["images"][0]["previousDigest"] == old
    assert f"{old.split(':')[1][:12]} -> {new.split(':')[1][:12]}" in rebuilt["reason"]
    assert bench.task("app-task")["step"]["baseImageDependencies"][0]["digest"] == new
    # The change is consumed: checking again builds nothing more.
    assert bench.acrtask("task", "watch", "--once").code == 0
    assert len(bench.runs()) == 2


def test_a_disabled_trigger_runs_nothing(bench: Workbench) -> None:
    app_on_base(bench)
    assert bench.acrtask("task", "update", "-n", "app-task", "--base-image-trigger-enabled", "False").code == 0
    bench.push_base("baseimages/node:1", "v2")
    assert bench.acrtask("task", "watch", "--once").code == 0
    assert len(bench.runs()) == 1


def test_a_new_tag_triggers_nothing(bench: Workbench) -> None:
    app_on_base(bench)
    bench.push_base("baseimages/node:2", "v2")
    assert bench.acrtask("task", "watch", "--once").code == 0
    assert len(bench.runs()) == 1


@pytest.mark.parametrize(("trigger_type", "expected_runs"), [("Runtime", 1), ("All", 2)])
def test_build_stage_bases_trigger_only_under_all(bench: Workbench, trigger_type: str, expected_runs: int) -> None:
    bench.push_base("tools/builder:1", "b1")
    bench.push_base("baseimages/node:1", "n1")
    ctx = bench.context("multi", (f"FROM {bench.host}/tools/builder:1 AS build\nRUN echo x > /x\n"
                                  f"FROM {bench.host}/baseimages/node:1\nCOPY --from=build /x /x\n"))
    bench.create("multi-task", ctx, "multi:1", extra=("--base-image-trigger-type", trigger_type))
    assert bench.run("multi-task").code == 0
    bench.push_base("tools/builder:1", "b2")
    assert bench.acrtask("task", "watch", "--once").code == 0
    assert len(bench.runs()) == expected_runs


def test_a_chain_rebuilds_upstream_first_each_once(bench: Workbench) -> None:
    bench.push_base("upstream/os:1", "v1")
    base_ctx = bench.context("base", f"FROM {bench.host}/upstream/os:1\nRUN echo base > /base\n")
    app_ctx = bench.context("app", f"FROM {bench.host}/baseimages/node:1\nRUN echo app > /app\n")
    bench.create("base-task", base_ctx, "baseimages/node:1")
    bench.create("app-task", app_ctx, "app:latest")
    assert bench.run("base-task").code == 0
    assert bench.run("app-task").code == 0

    bench.push_base("upstream/os:1", "v2")
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    new_runs = bench.runs()[2:]
    assert [r["task"] for r in new_runs] == ["base-task", "app-task"]
    assert new_runs[0]["trigger"]["baseImage"] == f"{bench.host}/upstream/os:1"
    assert new_runs[1]["trigger"]["baseImage"] == f"{bench.host}/baseimages/node:1"
    assert new_runs[1]["trigger"]["upstreamRunId"] == new_runs[0]["runId"]
    assert new_runs[1]["startTime"] >= new_runs[0]["finishTime"]


def test_a_diamond_builds_each_task_once(bench: Workbench) -> None:
    bench.push_base("upstream/os:1", "v1")
    top = bench.context("top", f"FROM {bench.host}/upstream/os:1\nRUN echo top > /top\n")
    left = bench.context("left", f"FROM {bench.host}/top:1\nRUN echo left > /left\n")
    right = bench.context("right", f"FROM {bench.host}/top:1\nRUN echo right > /right\n")
    bottom = bench.context("bottom", (f"FROM {bench.host}/right:1 AS r\n"
                                      f"FROM {bench.host}/left:1\nCOPY --from=r /right /right\n"))
    bench.create("top-task", top, "top:1")
    bench.create("left-task", left, "left:1")
    bench.create("right-task", right, "right:1")
    bench.create("bottom-task", bottom, "bottom:1", extra=("--base-image-trigger-type", "All"))
    for name in ("top-task", "left-task", "right-task", "bottom-task"):
        assert bench.run(name).code == 0, name

    bench.push_base("upstream/os:1", "v2")
    done = bench.acrtask("task", "watch", "--once", "--max-concurrent-runs", "2")
    assert done.code == 0, done.err
    new_runs = bench.runs()[4:]
    assert sorted(r["task"] for r in new_runs) == ["bottom-task", "left-task", "right-task", "top-task"]
    order = [r["task"] for r in sorted(new_runs, key=lambda r: r["startTime"])]
    assert order[0] == "top-task" and order[-1] == "bottom-task"
    bottom_run = next(r for r in new_runs if r["task"] == "bottom-task")
    assert bottom_run["startTime"] >= max(r["finishTime"] for r in new_runs if r["task"] != "bottom-task")


def test_registry_notifications_trigger_without_a_poll(tmp_path: Path, buildah_env: dict[str, str]) -> None:
    from tests.support.registry import free_port

    port = free_port()
    token = "webhook-s3cret"
    with LocalRegistry(notify_url=f"http://127.0.0.1:{port}/",
                       notify_headers={"Authorization": [f"Bearer {token}"]}) as registry:
        bench = Workbench(registry, tmp_path, buildah_env)
        bench.env["ACRTASK_WEBHOOK_TOKEN"] = token
        app_on_base(bench)
        # The first check happens at start, the listener listening before it; after it, only the notification
        # can tell of the push.
        watch = start_watch(bench, "--listen", f"127.0.0.1:{port}", "--poll-interval", "1h")
        try:
            bench.push_base("baseimages/node:1", "v2")
            wait_for(lambda: len(bench.runs()) == 2 and bench.runs()[-1]["status"] == "Succeeded", 90,
                     "the notified rebuild")
        finally:
            _, err = watch.stop()
        assert "Notified by distribution" in err
        assert bench.runs()[-1]["trigger"]["kind"] == "BaseImageUpdate"


def test_a_commit_to_a_local_git_repository_runs_the_task(bench: Workbench, tmp_path: Path) -> None:
    bench.push_base("base:1", "v1")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text(f"FROM {bench.host}/base:1\nCOPY file /file\n")
    (repo / "file").write_text("1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    bench.create("git-task", repo, "git:1")
    assert bench.task("git-task")["trigger"]["sourceTriggers"][0]["status"] == "Enabled"
    assert bench.run("git-task").code == 0
    watch = start_watch(bench, "--commit-poll-interval", "1s", "--poll-interval", "1h")
    try:
        (repo / "file").write_text("2\n")
        subprocess.run([*git, "commit", "-qam", "two"], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        wait_for(lambda: len(bench.runs()) == 2 and bench.runs()[-1]["status"] == "Succeeded", 60, "the commit run")
    finally:
        watch.stop()
    run = bench.runs()[-1]
    assert run["trigger"] == {"kind": "Commit", "commitId": head}
    assert run["sourceCommitId"] == head


def test_a_timer_runs_the_task(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("timed", f"FROM {bench.host}/base:1\n")
    bench.create("timer-task", ctx, "timed:1", extra=("--schedule", "tick:* * * * *"))
    watch = start_watch(bench, "--poll-interval", "1h")
    try:
        wait_for(lambda: any(r["status"] == "Succeeded" for r in bench.runs()), 75, "the timer's run")
    finally:
        watch.stop()
    trigger = bench.runs()[0]["trigger"]
    assert trigger["kind"] == "Timer"
    assert trigger["timerName"] == "tick"
    assert trigger["scheduleOccurrence"].endswith(":00.000000Z")


def test_kill_9_during_a_build_then_restart_marks_error_and_runs_again(bench: Workbench) -> None:
    bench.push_base("baseimages/node:1", "v1")
    ctx = bench.context("slow", f"FROM {bench.host}/baseimages/node:1\nCOPY delay /delay\nRUN sleep $(cat /delay)\n",
                        {"delay": "0\n"})
    bench.create("slow-task", ctx, "slow:1")
    assert bench.run("slow-task").code == 0
    (ctx / "delay").write_text("64\n")
    bench.push_base("baseimages/node:1", "v2")

    watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h"))
    wait_for(lambda: bool(marked_processes("sleep 64")), 60, "the rebuild to reach `sleep 64`")
    os.kill(watch.pid, signal.SIGKILL)
    watch.wait(30)
    assert bench.runs()[-1]["status"] == "Running"  # nobody was left to record its end

    (ctx / "delay").write_text("0\n")
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    runs = bench.runs()
    assert runs[1]["status"] == "Error"
    assert "interrupted" in runs[1]["runErrorMessage"]
    assert runs[2]["status"] == "Succeeded"
    assert runs[2]["trigger"] == runs[1]["trigger"]
    assert len(runs) == 3
    assert "leftover build process" in done.err
    leftovers = subprocess.run(["pgrep", "-f", f"{ctx}"], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def test_a_change_to_another_platform_of_a_multi_arch_base_triggers_nothing(bench: Workbench) -> None:
    from tests.support import push_multiarch_base

    index, _ = push_multiarch_base(bench.host, "multi/base:1", {"linux/amd64": "amd-v1", "linux/arm64": "arm-v1"},
                                   env=bench.env)
    ctx = bench.context("multi-app", f"FROM {bench.host}/multi/base:1\nRUN echo x > /x\n")
    bench.create("multi-app", ctx, "multi-app:1")
    assert bench.run("multi-app").code == 0
    dep = bench.task("multi-app")["step"]["baseImageDependencies"][0]
    assert dep["digest"] == index and dep["platformDigest"] != index

    moved, _ = push_multiarch_base(bench.host, "multi/base:1", {"linux/amd64": "amd-v1", "linux/arm64": "arm-v2"},
                                   env=bench.env)
    assert moved != index
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    assert len(bench.runs()) == 1
    refreshed = bench.task("multi-app")["step"]["baseImageDependencies"][0]
    assert refreshed["digest"] == moved and refreshed["platformDigest"] == dep["platformDigest"]

    changed, _ = push_multiarch_base(bench.host, "multi/base:1", {"linux/amd64": "amd-v2", "linux/arm64": "arm-v2"},
                                     env=bench.env)
    assert bench.acrtask("task", "watch", "--once").code == 0
    runs = bench.runs()
    assert len(runs) == 2 and runs[-1]["trigger"]["newDigest"] == changed


def test_sigterm_cancels_a_running_build_after_the_grace_period(bench: Workbench) -> None:
    bench.push_base("baseimages/node:1", "v1")
    ctx = bench.context("graceful", f"FROM {bench.host}/baseimages/node:1\nCOPY delay /delay\n"
                        "RUN sleep $(cat /delay)\n", {"delay": "0\n"})
    bench.create("graceful-task", ctx, "graceful:1")
    assert bench.run("graceful-task").code == 0
    (ctx / "delay").write_text("63\n")
    bench.push_base("baseimages/node:1", "v2")
    watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h", "--grace-period", "1s"))
    wait_for(lambda: bool(marked_processes("sleep 63")), 60, "the rebuild to reach `sleep 63`")
    _, err = watch.stop()
    assert "ended Canceled on shutdown" in err
    run = bench.runs()[-1]
    assert run["status"] == "Canceled"
    assert subprocess.run(["pgrep", "-f", "sleep 63"], capture_output=True).stdout == b""


def test_a_push_by_task_run_in_another_shell_rebuilds_dependents_at_once(bench: Workbench) -> None:
    bench.push_base("upstream/os:1", "v1")
    base_ctx = bench.context("base", f"FROM {bench.host}/upstream/os:1\nCOPY version /version\n", {"version": "1"})
    app_ctx = bench.context("app", f"FROM {bench.host}/baseimages/node:1\nRUN echo app > /app\n")
    bench.create("base-task", base_ctx, "baseimages/node:1")
    bench.create("app-task", app_ctx, "app:latest")
    assert bench.run("base-task").code == 0
    assert bench.run("app-task").code == 0
    watch = start_watch(bench, "--poll-interval", "1h")  # no webhooks: only its own eyes
    try:
        (base_ctx / "version").write_text("2")
        assert bench.run("base-task").code == 0
        wait_for(lambda: len(bench.runs()) == 4 and bench.runs()[-1]["status"] == "Succeeded", 60, "the rebuild")
    finally:
        watch.stop()
    runs = bench.runs()
    assert runs[-1]["task"] == "app-task"
    assert runs[-1]["trigger"]["upstreamRunId"] == runs[-2]["runId"] == "ca3"


def test_a_task_run_killed_while_watch_runs_is_recorded_error_by_watch(bench: Workbench) -> None:
    import sys

    bench.push_base("baseimages/node:1", "v1")
    ctx = bench.context("manual", f"FROM {bench.host}/baseimages/node:1\nCOPY delay /delay\nRUN sleep $(cat /delay)\n",
                        {"delay": "62\n"})
    bench.create("manual-task", ctx, "manual:1")
    watch = start_watch(bench, "--poll-interval", "1h")
    manual = None
    try:
        manual = subprocess.Popen([sys.executable, "-m", "acrtask", "task", "run", "-n", "manual-task"],
                                  env=bench.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: bool(marked_processes("sleep 62")), 90, "the manual run's build to reach `sleep 62`")
        assert bench.runs()[-1]["status"] == "Running"
        os.kill(manual.pid, signal.SIGKILL)  # its buildah lives on, in a session of its own
        manual.wait(30)
        wait_for(lambda: bench.runs()[-1]["status"] == "Error", 30, "watch to record the killed run Error")
        wait_for(lambda: not marked_processes("sleep 62"), 30, "the leftover build to be stopped")
    finally:
        if manual is not None and manual.poll() is None:
            manual.kill()
        _, err = watch.stop()
    run = bench.runs()[-1]
    assert run["runErrorMessage"] == f"interrupted: the acrtask process running it (pid {manual.pid}) stopped"
    assert f"of manual-task was interrupted: its process (pid {manual.pid}) is gone; recorded Error." in err
    assert "leftover build process" in err


def test_a_hanging_registry_does_not_delay_the_bases_of_a_healthy_one(bench: Workbench) -> None:
    from tests.support.hanging import HangingProxy

    bench.push_base("baseimages/node:1", "v1")
    with HangingProxy(bench.registry.port) as proxy:
        ok_ctx = bench.context("ok", f"FROM {bench.host}/baseimages/node:1\nRUN echo ok > /ok\n")
        slow_ctx = bench.context("slow", f"FROM {proxy.host}/baseimages/node:1\nRUN echo slow > /slow\n")
        bench.create("ok-task", ok_ctx, "ok:1")
        bench.create("slow-task", slow_ctx, "slow:1")  # its base is the same image, through the proxy
        assert bench.run("ok-task").code == 0
        assert bench.run("slow-task").code == 0
        proxy.hang()  # from now on that registry accepts connections and never answers
        bench.push_base("baseimages/node:1", "v2")
        watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h"))
        try:
            wait_for(lambda: [r["status"] for r in bench.runs("ok-task")] == ["Succeeded", "Succeeded"], 90,
                     "the healthy registry's base to rebuild its task")
            assert proxy.held, "watch never asked the hanging registry"
            assert len(bench.runs("slow-task")) == 1
        finally:
            _, err = watch.stop()
    lines = err.splitlines()
    queued = next(i for i, line in enumerate(lines) if "Queued run" in line and "of ok-task" in line)
    about_slow = [i for i, line in enumerate(lines) if proxy.host in line and " Schedule: " not in line]
    assert all(i > queued for i in about_slow), lines  # nothing was waiting for the hanging registry's answer

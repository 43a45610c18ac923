"""Multi-step tasks end to end: real buildah builds, pushes and containers against a real registry."""

from __future__ import annotations

import base64
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from acrtask.times import parse_time
from tests.integration.workbench import Workbench
from tests.support import fetch_manifest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def multistep_context(bench: Workbench, name: str, task_file: str, files: dict[str, str] | None = None) -> Path:
    folder = bench.tmp / name
    folder.mkdir()
    (folder / "acr-task.yaml").write_text(task_file)
    for file, text in (files or {}).items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(text)
    return folder


def test_build_push_and_cmd_steps_run_in_order_and_record_what_they_did(bench: Workbench) -> None:
    base_digest = bench.push_base("base/runtime:1", "runtime-v1")
    ctx = multistep_context(bench, "three", (
        "version: v1.1.0\n"
        "steps:\n"
        "  - id: build-app\n"
        "    build: -t $Registry/app:$ID -f Dockerfile .\n"
        "  - id: push-app\n"
        "    push: [\"$Registry/app:$ID\"]\n"
        "  - id: test-app\n"
        "    cmd: $Registry/app:$ID sh -c 'cat /greeting; echo tested > /workspace/result'\n"
        "  - id: check\n"
        "    cmd: $Registry/app:$ID cat /workspace/result\n"
    ), {"Dockerfile": f"FROM {bench.host}/base/runtime:1\nRUN echo hello-from-app > /greeting\n"})
    done = bench.acrtask("task", "create", "-n", "multi-task", "-r", bench.host, "-c", str(ctx), "-f",
                         "acr-task.yaml", "-o", "none")
    assert done.code == 0, done.err
    task = bench.task("multi-task")
    assert task["step"]["type"] == "FileTask"
    assert task["step"]["taskFilePath"] == "acr-task.yaml"

    done = bench.run("multi-task")
    assert done.code == 0, done.err + done.out
    log = bench.acrtask("task", "logs", "--run-id", "ca1").out
    assert "hello-from-app" in log and "tested" in log
    assert "Step ID: build-app marked as successful (elapsed time in seconds: " in log
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Succeeded" and run["runType"] == "AutoRun"
    assert [s["stepId"] for s in run["steps"]] == ["build-app", "push-app", "test-app", "check"]
    assert {s["status"] for s in run["steps"]} == {"successful"}
    assert run["steps"][0]["baseImageDependencies"][0]["digest"] == base_digest
    pushed = run["steps"][1]["outputImages"][0]
    assert pushed["digest"] == bench.digest("app", "ca1") == run["outputImages"][0]["digest"]
    assert fetch_manifest(bench.host, "app", "ca1")["layers"]
    deps = bench.task("multi-task")["step"]["baseImageDependencies"]
    assert [(d["repository"], d["stepId"], d["type"]) for d in deps] == [("base/runtime", "build-app", "RunTime")]



def _interval(step: dict) -> tuple[datetime, datetime]:
    return parse_time(step["startTime"]), parse_time(step["finishTime"])


def test_steps_with_when_dash_run_in_parallel(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    slow = f"FROM {bench.host}/base:1\nRUN sleep 2\n"
    ctx = multistep_context(bench, "parallel", (
        "steps:\n"
        f"  - {{id: one, when: ['-'], build: -t {bench.host}/one:1 -f one/Dockerfile one}}\n"
        f"  - {{id: two, when: ['-'], build: -t {bench.host}/two:1 -f two/Dockerfile two}}\n"
        "  - {id: after, when: [one, two], cmd: " + bench.host + "/one:1 echo both-built}\n"
        f"  - {{id: derived, build: -t {bench.host}/derived:1 -f derived/Dockerfile derived}}\n"
    ), {"one/Dockerfile": slow, "two/Dockerfile": slow,
        # one:1 is never pushed: resolving it in the registry would fail, so it must count as built here
        "derived/Dockerfile": f"FROM {bench.host}/one:1\nRUN echo derived > /derived\n"})
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", str(ctx))
    assert done.code == 0, done.err + done.out
    steps = {s["stepId"]: s for s in bench.acrtask("task", "show-run", "--run-id", "ca1").json()["steps"]}
    (start_one, end_one), (start_two, end_two) = _interval(steps["one"]), _interval(steps["two"])
    assert start_one < end_two and start_two < end_one  # the two builds overlapped
    assert _interval(steps["after"])[0] >= max(end_one, end_two)
    assert "[after] both-built" in done.out  # parallel steps' lines carry their step id
    assert f"[derived] Base image {bench.host}/one:1 is built by this task file: not an external base." in done.out
    assert steps["derived"]["status"] == "successful" and "baseImageDependencies" not in steps["derived"]


def test_a_base_update_runs_the_multistep_task_once_then_the_docker_task_built_on_its_push(bench: Workbench) -> None:
    old = bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "multi", (
        "version: v1.1.0\n"
        "steps:\n"
        "  - {id: build-mid, build: -t $Registry/mid:1 -f mid/Dockerfile mid}\n"
        "  - {id: build-tool, when: ['-'], build: -t $Registry/tool:$ID -f tool/Dockerfile tool}\n"
        "  - {id: push, when: [build-mid, build-tool], push: ['$Registry/mid:1', '$Registry/tool:$ID']}\n"
    ), {"mid/Dockerfile": f"FROM {bench.host}/base:1\nRUN echo mid > /mid\n",
        "tool/Dockerfile": f"FROM {bench.host}/base:1\nRUN echo tool > /tool\n"})
    assert bench.acrtask("task", "create", "-n", "multi-task", "-r", bench.host, "-c", str(ctx), "-f",
                         "acr-task.yaml", "-o", "none").code == 0
    app = bench.context("app", f"FROM {bench.host}/mid:1\nRUN echo app > /app\n")
    bench.create("app-task", app, "app:1")
    assert bench.run("multi-task").code == 0
    assert bench.run("app-task").code == 0
    shown = bench.task("multi-task")["step"]
    assert shown["imageNames"] == [f"{bench.host}/mid:1"]  # tool:$ID changes every run: no stable base
    assert sorted(d["stepId"] for d in shown["baseImageDependencies"]) == ["build-mid", "build-tool"]

    new = bench.push_base("base:1", "v2")
    done = bench.acrtask("task", "watch", "--once")
    assert done.code == 0, done.err
    runs = bench.runs()
    assert [(r["task"], r["trigger"]["kind"]) for r in runs[2:]] == [
        ("multi-task", "BaseImageUpdate"), ("app-task", "BaseImageUpdate")]
    multi, app_run = runs[2], runs[3]
    assert multi["status"] == app_run["status"] == "Succeeded"
    assert multi["trigger"]["baseImage"] == f"{bench.host}/base:1"
    assert multi["trigger"]["baseImageStep"] in ("build-mid", "build-tool")
    assert f"(step {multi['trigger']['baseImageStep']}) changed: {old.split(':')[1][:12]}" in multi["reason"]
    assert app_run["trigger"]["baseImage"] == f"{bench.host}/mid:1"
    assert app_run["trigger"]["upstreamRunId"] == multi["runId"]
    assert {d["digest"] for d in bench.task("multi-task")["step"]["baseImageDependencies"]} == {new}


def test_run_variables_aliases_and_values_from_set_and_a_values_file(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "templates", (
        "version: v1.1.0\n"
        "alias:\n"
        "  values:\n"
        "    greeting: hello\n"
        "steps:\n"
        "  - cmd: $Registry/base:1 echo \"id={{.Run.ID}} reg=$Registry name=$RegistryName $greeting "
        "tag={{.Values.tag}} flavour={{ .Values.build.flavour }} cost=$$5\"\n"
    ), {"values.yaml": "tag: from-file\nbuild:\n  flavour: vanilla\n"})
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", "--values", "values.yaml", str(ctx))
    assert done.code == 0, done.err + done.out
    assert f"id=ca1 reg={bench.host} name=127.0.0.1 hello tag=from-file flavour=vanilla cost=$5" in done.out
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", "--values", "values.yaml",
                         "--set", "tag=from-set", str(ctx))
    assert done.code == 0, done.err + done.out
    assert "id=ca2 " in done.out and "tag=from-set flavour=vanilla" in done.out
    runs = bench.runs()
    assert [(r["runType"], r["task"]) for r in runs] == [("QuickRun", ""), ("QuickRun", "")]


def test_secrets_reach_steps_as_values_and_volume_files_but_never_the_log(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "secrets", (
        "version: v1.1.0\n"
        "secrets:\n"
        "  - id: token\n"
        "volumes:\n"
        "  - name: creds\n"
        "    secret:\n"
        "      token.txt: {{.Secrets.token | b64enc}}\n"
        "steps:\n"
        "  - cmd: $Registry/base:1 sh -c 'echo env=$TOKEN; echo file=$(cat /creds/token.txt)'\n"
        "    env: ['TOKEN={{.Values.token}}']\n"
        "    volumeMounts: [{name: creds, mountPath: /creds}]\n"
    ))
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", "--set-secret", "token=hunter2-secret",
                         str(ctx))
    assert done.code == 0, done.err + done.out
    assert "env=***" in done.out and "file=***" in done.out
    everything = done.out + done.err + bench.acrtask("task", "show-run", "--run-id", "ca1").out
    everything += "".join(p.read_text() for p in (bench.home / "runs").glob("ca1.*"))
    assert "hunter2-secret" not in everything


def containers(bench: Workbench) -> list[str]:
    done = subprocess.run(["buildah", "containers", "--format", "{{.ContainerName}}"], env=bench.env,
                          capture_output=True, text=True, timeout=60, check=True)
    return [name for name in done.stdout.split() if name.startswith("acrtask-")]


def test_ignored_errors_retries_and_a_detached_container_stopped_at_the_end(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "behaviours", (
        "version: v1.1.0\n"
        "steps:\n"
        "  - {id: server, detach: true, cmd: \"$Registry/base:1 sh -c 'echo server-up; sleep 300'\"}\n"
        "  - id: flaky\n"
        "    retries: 2\n"
        "    cmd: $Registry/base:1 sh -c 'echo try >> /workspace/tries; test $(cat /workspace/tries | wc -l) -ge 3'\n"
        "  - {id: broken, ignoreErrors: true, cmd: \"$Registry/base:1 sh -c 'exit 3'\"}\n"
        "  - {id: last, cmd: \"$Registry/base:1 sh -c 'cat /workspace/tries | wc -l'\"}\n"
    ))
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", str(ctx))
    assert done.code == 0, done.err + done.out
    assert done.out.count("Step ID: flaky failed: ") == 2  # two failures, then success on the third try
    assert "Step ID: broken encountered an error" in done.out
    assert "Stopped the detached step server." in done.out
    steps = {s["stepId"]: s for s in bench.acrtask("task", "show-run", "--run-id", "ca1").json()["steps"]}
    assert steps["broken"]["status"] == "successful" and "exit code 3" in steps["broken"]["error"]
    assert steps["server"]["status"] == "successful"
    assert containers(bench) == []  # the detached one included


def test_a_step_timeout_fails_the_run_and_stops_the_step(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "slow", "steps:\n  - {id: slow, timeout: 2, cmd: " + bench.host +
                            "/base:1 sleep 120}\n")
    done = bench.acrtask("run", "-r", bench.host, "-f", "acr-task.yaml", str(ctx), timeout=100)
    assert done.code == 1
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Failed"
    assert run["steps"][0]["status"] == "failed" and "did not finish within its 2 s timeout" in run["steps"][0]["error"]
    assert containers(bench) == []


def test_cancel_run_stops_a_running_step(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = multistep_context(bench, "long", (
        "steps:\n"
        f"  - {{id: long, cmd: \"{bench.host}/base:1 sh -c 'echo started-long; sleep 120'\"}}\n"
        f"  - {{id: never, cmd: {bench.host}/base:1 echo never-runs}}\n"
    ))
    assert bench.acrtask("task", "create", "-n", "long-task", "-c", str(ctx), "-f", "acr-task.yaml",
                         "-o", "none").code == 0
    proc = bench.popen("task", "run", "-n", "long-task")
    log = bench.home / "runs" / "ca1.log"
    wait_for(lambda: log.exists() and "started-long" in log.read_text(), 60, "the first step to start",
             interval=0.2)
    assert bench.acrtask("task", "cancel-run", "--run-id", "ca1").code == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    run = bench.acrtask("task", "show-run", "--run-id", "ca1").json()
    assert run["status"] == "Canceled"
    assert [s["status"] for s in run["steps"]] == ["failed", "skipped"]
    assert "never-runs" not in out
    assert containers(bench) == []


def test_acrtask_build_builds_and_pushes_once_as_a_quick_build(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    ctx = bench.context("quick", f"FROM {bench.host}/base:1\nARG WORD\nRUN echo $WORD > /word\n")
    done = bench.acrtask("build", "-r", bench.host, "-t", "quick:{{.Run.ID}}", "-t", "quick:latest",
                         "--build-arg", "WORD=hi", str(ctx))
    assert done.code == 0, done.err + done.out
    assert done.err.startswith("Queued a run with ID: ca1")
    [run] = bench.runs()
    assert (run["runType"], run["task"], run["status"]) == ("QuickBuild", "", "Succeeded")
    assert {i["tag"]: i["digest"] for i in run["outputImages"]} == {
        "ca1": bench.digest("quick", "ca1"), "latest": bench.digest("quick", "latest")}
    assert "was successful" in bench.acrtask("task", "logs", "--run-id", "ca1").out
    assert bench.acrtask("task", "list").json() == []  # nothing was stored as a task


def test_a_cmd_task_is_an_encoded_task_that_runs_its_command(bench: Workbench) -> None:
    bench.push_base("base:1", "v1")
    done = bench.acrtask("task", "create", "-n", "cmd-task", "-r", bench.host, "--cmd",
                         "$Registry/base:1 echo hi-from-cmd", "-c", "/dev/null")
    assert done.code == 0, done.err
    step = done.json()["step"]
    assert step["type"] == "EncodedTask" and step["contextPath"] == "/dev/null"
    assert "cmd: $Registry/base:1 echo hi-from-cmd" in base64.b64decode(step["encodedTaskContent"]).decode()
    done = bench.run("cmd-task")
    assert done.code == 0, done.err + done.out
    assert "hi-from-cmd" in done.out

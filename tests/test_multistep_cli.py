"""Multi-step tasks through the CLI without a builder: how they are created and shown, and bad input."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli

REG = "localhost:5000"
GOOD = "version: v1.1.0\nsteps:\n  - build: -t $Registry/app:$ID .\n  - push: ['$Registry/app:$ID']\n"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_a_yaml_file_makes_a_file_task_shown_as_az_shows_it(home: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, "acr-task.yaml", GOOD)
    write(ctx, "values.yaml", "tag: v1\n")
    done = run_cli("task", "create", "-n", "file-task", "-r", REG, "-c", str(ctx), "-f", "acr-task.yaml",
                   "--values", "values.yaml", "--set", "tag=v2", "--set-secret", "token=hunter2")
    assert done.code == 0, done.err
    step = done.json()["step"]
    assert step == {"type": "FileTask", "contextPath": str(ctx), "contextAccessToken": None,
                    "taskFilePath": "acr-task.yaml",
                    "valuesFilePath": "values.yaml",
                    "values": [{"name": "tag", "value": "v2", "isSecret": False}, {"name": "token", "isSecret": True}]}
    assert done.json()["registry"] == REG
    assert "hunter2" not in run_cli("task", "show", "-n", "file-task").out


def test_dev_null_stores_the_file_in_the_task(home: Path, tmp_path: Path) -> None:
    file = write(tmp_path, "steps.yaml", GOOD)
    done = run_cli("task", "create", "-n", "encoded-task", "-r", REG, "-c", "/dev/null", "-f", str(file))
    assert done.code == 0, done.err
    step = done.json()["step"]
    assert step["type"] == "EncodedTask" and step["contextPath"] == "/dev/null"
    assert base64.b64decode(step["encodedTaskContent"]).decode() == GOOD


def test_dash_reads_the_task_file_from_standard_input(home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "acrtask", "task", "create", "-n", "stdin-task", "-r", REG, "-c",
                           "/dev/null", "-f", "-"], input=GOOD, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert base64.b64decode(json.loads(done.stdout)["step"]["encodedTaskContent"]).decode() == GOOD


def test_a_dockerfile_task_takes_run_variables_in_its_tags(home: Path, ctx: Path) -> None:
    done = run_cli("task", "create", "-n", "docker-task", "-r", REG, "-c", str(ctx), "-t",
                   "{{.Run.Registry}}/app:{{ .Run.Date }}-{{.Run.ID}}")
    assert done.code == 0, done.err
    assert done.json()["step"]["imageNames"] == [f"{REG}/app:{{{{.Run.Date}}}}-{{{{.Run.ID}}}}"]
    refused = run_cli("task", "create", "-n", "docker-task2", "-c", str(ctx), "-t", f"{REG}/app:{{{{.Values.x}}}}")
    assert refused.code == 2 and "values exist only in multi-step tasks" in refused.err


BAD_FILES = [
    ("steps:\n  - cmd: [unclosed\n", "line 3: The task file is not valid YAML"),
    ("steps:\n  - cmd: x echo\n    tiemout: 5\n", "line 3: Step 'acb_step_0': unknown property 'tiemout'"),
    ("steps:\n  - cmd: x echo\n    push: [y:1]\n", "line 2: Step 1 has push and cmd: a step is exactly one of"),
    ("steps:\n  - id: a\n    cmd: x\n    when: [nope]\n",
     "line 2: Step 'a' waits for step 'nope', which does not exist"),
    ("steps:\n  - {id: a, cmd: x, when: [b]}\n  - {id: b, cmd: x, when: [a]}\n",
     "The steps' when makes a cycle: a -> b -> a"),
    ("steps:\n  - cmd: x:{{.Run.Nope}} echo\n", "line 2: Unknown run variable {{.Run.Nope}}"),
    ("steps:\n  - cmd: x:{{.Values.tag}} echo\n", "line 2: {{.Values.tag}} has no value: 'tag' is not set"),
    ("steps:\n{{if .Values.x}}\n  - cmd: x\n{{end}}\n", "line 2: Template action {{if .Values.x}} is not supported"),
    ("steps:\n  - cmd: x echo\n    network: host\n", "line 3: Step 'acb_step_0': 'network' is not supported"),
    ("steps:\n  - build: -t a/b:1 --secret id=x .\n", "the docker build option --secret is not supported"),
    ("version: v9\nsteps:\n  - cmd: x\n", "line 1: Version 'v9' is not supported"),
    ("steps:\n  - push: [app:1]\n", "the image app:1 names no registry, and the run has none"),
]


def state_of(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()} if home.exists() else {}


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m.split(": ", 1)[-1][:40] for _, m in BAD_FILES])
def test_a_bad_task_file_is_one_error_line_exit_2_and_nothing_stored(home: Path, tmp_path: Path, text: str,
                                                                     message: str) -> None:
    assert run_cli("task", "create", "-n", "keeper", "--cmd", "x echo hi").code == 0
    before = state_of(home)
    file = write(tmp_path, "bad.yaml", text)
    done = run_cli("task", "create", "-n", "bad-task", "-c", "/dev/null", "-f", str(file))
    assert done.code == 2, done.err
    assert done.err.startswith(f"ERROR: {file}") and done.err.count("\n") == 1, done.err
    assert message in done.err
    assert state_of(home) == before
    # The same file in a context: `acrtask run` checks it before anything is recorded.
    write(tmp_path / "ctx", "acr-task.yaml", text)
    done = run_cli("run", "-f", "acr-task.yaml", str(tmp_path / "ctx"))
    assert done.code == 2 and done.err.startswith("ERROR: acr-task.yaml") and message in done.err, done.err
    assert state_of(home) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "tag"], "Invalid --set 'tag': expected NAME=VALUE"),
    (["--cmd", "x", "-f", "a.yaml"], "either --cmd myCommand -c /dev/null or -f myFile -c myContext, but not both"),
    (["-f", "steps.toml", "-c", "{ctx}"], "is not YAML"),
    (["-f", "acr-task.yaml", "-c", "{ctx}", "-t", "localhost:5000/a:1"], "-t/--image is for Dockerfile tasks"),
    (["-f", "missing.yaml", "-c", "{ctx}"], "missing.yaml does not exist"),
    (["-c", "/dev/null"], "acb.yaml does not exist"),
])
def test_bad_multistep_flags(home: Path, tmp_path: Path, argv: list[str], message: str) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, "acr-task.yaml", GOOD)
    write(ctx, "steps.toml", "")
    done = run_cli("task", "create", "-n", "flag-task", *[a.replace("{ctx}", str(ctx)) for a in argv])
    assert done.code == 2, done.err
    assert done.err.count("\n") == 1 and message in done.err, done.err
    assert run_cli("task", "list").json() == []


def test_a_file_task_with_a_bad_file_fails_its_run_naming_the_file_and_line(home: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, "acr-task.yaml", GOOD)
    assert run_cli("task", "create", "-n", "file-task", "-r", REG, "-c", str(ctx), "-f", "acr-task.yaml").code == 0
    write(ctx, "acr-task.yaml", "steps:\n  - cmd: x\n    retries: -1\n")  # changed after create
    done = run_cli("task", "run", "-n", "file-task")
    assert done.code == 1
    run = json.loads(run_cli("task", "show-run", "--run-id", "ca1").out)
    assert run["status"] == "Failed" and run["runType"] == "AutoRun"
    assert run["runErrorMessage"].startswith("acr-task.yaml, line 3: Step 'acb_step_0' 'retries' must be at least 0")


def test_update_merges_values_and_keeps_the_task_type(home: Path, tmp_path: Path, ctx: Path) -> None:
    folder = tmp_path / "steps"
    write(folder, "acr-task.yaml", GOOD)
    write(folder, "other.yaml", GOOD)
    assert run_cli("task", "create", "-n", "file-task", "-r", REG, "-c", str(folder), "-f", "acr-task.yaml",
                   "--set", "a=1", "--set", "b=2").code == 0
    done = run_cli("task", "update", "-n", "file-task", "--set", "b=3", "-f", "other.yaml")
    assert done.code == 0, done.err
    assert done.json()["step"]["values"] == [{"name": "a", "value": "1", "isSecret": False},
                                             {"name": "b", "value": "3", "isSecret": False}]
    assert done.json()["step"]["taskFilePath"] == "other.yaml"
    refused = run_cli("task", "update", "-n", "file-task", "-f", "Dockerfile")
    assert refused.code == 2 and "is not a task file" in refused.err
    assert run_cli("task", "create", "-n", "docker-task", "-c", str(ctx), "-t", f"{REG}/a:1").code == 0
    refused = run_cli("task", "update", "-n", "docker-task", "-f", "acr-task.yaml")
    assert refused.code == 2 and "is a task file, and this task builds a Dockerfile" in refused.err
    refused = run_cli("task", "run", "-n", "docker-task", "--set", "a=1")
    assert refused.code == 2 and "--set and --set-secret are for task files" in refused.err

"""Moving a home of the old format (state.toml, runs/*.json, runs/counter) into state.db, field by field.

The fixture home in tests/fixtures/legacy_home was written by the code of acrtask before the database
(see its README), plus keys a newer acrtask might have written.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from acrtask import wiring
from acrtask.run_record import RunTrigger, facts
from acrtask.runids import run_id
from acrtask.state import Database, StateStore
from tests.support.cli import run_cli, state_dump

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_home"
AZ_FILLED = ("id", "type", "provisioningState", "lastUpdatedTime")  # cli/shapes.py's, never stored


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    monkeypatch.setenv("ACRTASK_HOME", str(home))
    return home


def stored(home: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(tasks with their dependencies and unknown keys, runs, settings) as the database holds them."""
    tasks = StateStore(Database(home / "state.db")).documents(unknown_keys=True)
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        runs = {run_id(n): json.loads(doc) for n, doc in conn.execute("SELECT number, document FROM runs")}
        settings = dict(conn.execute("SELECT key, value FROM settings"))
    finally:
        conn.close()
    return tasks, runs, settings


def _api_spelling(state: dict) -> dict:
    """The old file's dependency type `Runtime` as acrtask now writes it: the API's `RunTime`."""
    for task in state.get("tasks", {}).values():
        for dep in task.get("step", {}).get("baseImageDependencies", []):
            if dep.get("type") == "Runtime":
                dep["type"] = "RunTime"
    return state


def _run_as_now(run: dict) -> dict:
    """An old run record as acrtask now shows it: a task's run is an AutoRun (AutoBuild was never ACR's kind
    for task runs), and an image-update trigger carries its id and time as ACR's does."""
    if run.get("runType") == "AutoBuild":
        run["runType"] = "AutoRun"
    update, trigger = run.get("imageUpdateTrigger"), run.get("trigger", {})
    if update is not None:
        event = f"{trigger['baseImage']}@{trigger['newDigest']}"
        update.update(id=str(uuid.uuid5(uuid.NAMESPACE_URL, event)), timestamp=run["createTime"])
    return run


def test_the_old_files_move_into_the_database_with_nothing_lost(home: Path) -> None:
    old_state = _api_spelling(tomllib.loads((FIXTURE / "state.toml").read_text()))
    old_runs = {p.stem: json.loads(p.read_text()) for p in (FIXTURE / "runs").glob("ca*.json")}

    first = run_cli("task", "list", "--query", "[].name")
    assert first.code == 0, first.err
    assert first.json() == ["app-build", "arm-variant", "never-run"]
    assert first.err.count("\n") == 1  # said once, on stderr
    assert first.err.startswith("WARNING: Moved 3 task(s) and 4 run record(s) from ")
    assert "run ids continue at ca10" in first.err

    tasks, runs, settings = stored(home)
    # Field by field: timers, secrets, source triggers, platforms, dependencies (none recorded, empty, three),
    # and the keys a newer acrtask wrote (agentPool, step.buildSecretsFrom, a dependency's sizeBytes).
    assert tasks == old_state["tasks"]
    assert tasks["never-run"]["agentPool"] == "large"
    assert "baseImageDependencies" not in tasks["never-run"]["step"]
    assert tasks["arm-variant"]["step"]["baseImageDependencies"] == []
    # Run records keep their facts; what they stored for show (reason, name, runType AutoBuild) is shown again.
    assert runs == {name: facts(run) for name, run in old_runs.items()}
    assert all("reason" in run and "reason" not in runs[name] for name, run in old_runs.items())
    for name, run in old_runs.items():
        shown = run_cli("task", "show-run", "--run-id", name).json()
        assert {k: v for k, v in shown.items() if k not in AZ_FILLED} == _run_as_now(run)
    assert json.loads(settings["stateTomlSections"]) == {"futureSection": old_state["futureSection"]}

    # The old files are kept aside; logs stay where they were and still belong to their runs.
    assert not (home / "state.toml").exists() and (home / "state.toml.migrated").exists()
    assert sorted(p.name for p in (home / "runs").iterdir()) == [
        "ca1.json.migrated", "ca1.log", "ca2.log", "ca3.json.migrated", "ca3.log", "ca4.json.migrated", "ca4.log",
        "ca5.json.migrated", "counter.migrated"]
    assert run_cli("task", "logs", "--run-id", "ca1").out == "Run ID: ca1 log line\n"
    assert run_cli("task", "show-run", "--run-id", "ca4").json()["status"] == "Running"

    second = run_cli("task", "list-runs", "--query", "[].runId")
    assert second.err == ""  # once only
    assert second.json() == ["ca5", "ca4", "ca3", "ca1"]
    # The next run id continues after the old counter (9), not after the newest record (ca5).
    created = wiring.Program().run_store.create(wiring.Program().state_store.get("never-run"), RunTrigger())
    assert created.run_id == "ca10"


def test_a_corrupt_old_run_record_moves_nothing(home: Path) -> None:
    (home / "runs" / "ca3.json").write_text('{"runId": "ca3", ')
    result = run_cli("task", "list")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"ERROR: Run record {home / 'runs' / 'ca3.json'} is corrupt")
    assert (home / "state.toml").exists() and not (home / "state.toml.migrated").exists()
    assert [line for line in state_dump(home) if "CREATE TABLE" in line or "INSERT" in line] == []  # rolled back
    (home / "runs" / "ca3.json").unlink()  # fixed by hand: the next command moves the rest
    again = run_cli("task", "list-runs", "--query", "[].runId")
    assert again.json() == ["ca5", "ca4", "ca1"]
    assert "Moved 3 task(s) and 3 run record(s)" in again.err


def test_a_home_with_only_runs_moves_them(home: Path) -> None:
    (home / "state.toml").unlink()
    result = run_cli("task", "list-runs", "--query", "[].runId")
    assert result.json() == ["ca5", "ca4", "ca3", "ca1"]
    assert "Moved 0 task(s) and 4 run record(s)" in result.err
    assert run_cli("task", "list").json() == []


def test_export_then_import_round_trips_field_by_field(home: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("task", "list").code == 0  # migrates
    full = run_cli("task", "export", "--with-dependencies", "--with-secrets")
    assert full.code == 0 and full.err == ""
    exported = tomllib.loads(full.out)
    assert exported == {"schemaVersion": 1,
                        "tasks": _api_spelling(tomllib.loads((FIXTURE / "state.toml").read_text()))["tasks"]}
    (tmp_path / "tasks.toml").write_text(full.out)

    monkeypatch.setenv("ACRTASK_HOME", str(tmp_path / "other-home"))
    imported = run_cli("task", "import", "-f", str(tmp_path / "tasks.toml"))
    assert imported.code == 0, imported.err
    assert imported.json() == [{"name": n, "action": "create", "applied": True}
                               for n in ("app-build", "arm-variant", "never-run")]
    assert stored(tmp_path / "other-home")[0] == stored(home)[0]  # every field, unknown keys and secrets too


def test_export_leaves_secret_values_and_dependencies_out_unless_asked(home: Path, tmp_path: Path) -> None:
    assert run_cli("task", "list").code == 0
    plain = run_cli("task", "export", "-n", "app-build")
    assert plain.code == 0
    assert "hunter2-very-secret" not in plain.out
    assert plain.err.startswith("Left out the values of 1 secret build argument(s)")
    task = tomllib.loads(plain.out)["tasks"]["app-build"]
    assert list(tomllib.loads(plain.out)["tasks"]) == ["app-build"]
    assert "baseImageDependencies" not in task["step"]
    assert {"name": "NPM_TOKEN", "isSecret": True} in task["step"]["arguments"]
    # Imported back over the task it came from: the definition is replaced, the secret value and the
    # recorded dependencies (observations, not definitions) are kept.
    before = stored(home)[0]["app-build"]
    (tmp_path / "app.toml").write_text(plain.out.replace('timeout = 900', 'timeout = 1200'))
    replaced = run_cli("task", "import", "-f", str(tmp_path / "app.toml"), "--replace")
    assert replaced.json() == [{"name": "app-build", "action": "replace", "applied": True}]
    after = stored(home)[0]["app-build"]
    assert after == {**before, "timeout": 1200}
    missing = run_cli("task", "export", "-n", "no-such-task")
    assert (missing.code, missing.out) == (3, "")


BAD_FILES = [
    ('schemaVersion = 1\n[tasks.good-task]\nname = "good-task"\n[tasks.bad\n', "line 4"),
    ('schemaVersion = 1\n\n[tasks.good-task]\nname = "good-task"\n[tasks.good-task.step]\ncontextPath = "/src"\n'
     'imageNames = ["localhost:5000/a:1"]\n\n[tasks.bad-cron]\nname = "bad-cron"\n[tasks.bad-cron.step]\n'
     'contextPath = "/src"\n[tasks.bad-cron.trigger]\ntimerTriggers = [{name = "t1", schedule = "61 * * * *"}]\n',
     "line 9: task 'bad-cron': Invalid cron schedule '61 * * * *'"),
    ('[tasks.no-step-here]\nname = "no-step-here"\n', "line 1: task 'no-step-here': the key 'step' is missing"),
    ('[tasks.other-name]\nname = "renamed"\n[tasks.other-name.step]\ncontextPath = "/src"\n',
     "line 1: task 'other-name': its name is 'renamed', not 'other-name'"),
    ('[tasks.ab]\nname = "ab"\n[tasks.ab.step]\ncontextPath = "/src"\n', "line 1: task 'ab': Invalid task name 'ab'"),
    ('schemaVersion = 7\n', "has schema version 7, newer than this acrtask understands"),
    ('tasks = 3\n', "has 'tasks' that is not a table: it is a int"),
    ('[tasks.bad-images]\nname = "bad-images"\n[tasks.bad-images.step]\ncontextPath = "/src"\nimageNames = "abc"\n',
     "line 1: task 'bad-images': 'imageNames' must be a list, not str"),
    ('title = "no tasks"\n', "holds no tasks"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_a_bad_import_file_imports_nothing(home: Path, tmp_path: Path, content: str, message: str) -> None:
    assert run_cli("task", "list").code == 0
    before = state_dump(home)
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = run_cli("task", "import", "-f", str(path))
    assert result.code == 2, result.err
    assert result.err.startswith(f"ERROR: {path}")
    assert result.err.count("\n") == 1
    assert message in result.err
    assert state_dump(home) == before


def test_import_is_all_or_nothing_and_dry_run_changes_nothing(home: Path, tmp_path: Path) -> None:
    assert run_cli("task", "list").code == 0
    before = state_dump(home)
    path = tmp_path / "two.toml"
    path.write_text('[tasks.new-task]\nname = "new-task"\n[tasks.new-task.step]\ncontextPath = "/src"\n'
                    'imageNames = ["localhost:5000/new:1"]\n\n'
                    '[tasks.never-run]\nname = "never-run"\n[tasks.never-run.step]\ncontextPath = "/elsewhere"\n')
    clash = run_cli("task", "import", "-f", str(path))
    assert clash.code == 2
    assert clash.err == (f"ERROR: {path} line 7: the task 'never-run' already exists. Pass --replace to replace "
                         "existing tasks; nothing was imported.\n")
    dry = run_cli("task", "import", "-f", str(path), "--replace", "--dry-run")
    assert dry.json() == [{"name": "new-task", "action": "create", "applied": False},
                          {"name": "never-run", "action": "replace", "applied": False}]
    assert state_dump(home) == before
    for missing in (tmp_path / "nope.toml", tmp_path):
        result = run_cli("task", "import", "-f", str(missing))
        assert result.code == 2 and result.err.count("\n") == 1
    assert state_dump(home) == before
    done = run_cli("task", "import", "-f", str(path), "--replace")
    assert done.code == 0
    assert run_cli("task", "show", "-n", "never-run", "--query", "step.contextPath").json() == "/elsewhere"
    assert run_cli("task", "show", "-n", "new-task", "--query", "creationDate").json().endswith("Z")


def test_an_update_trigger_token_is_a_secret_on_export_and_kept_on_import(home: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from acrtask.model import UpdateTriggerPayloadType

    assert run_cli("task", "list").code == 0  # migrates
    with wiring.Program().state_store.transaction() as tx:  # what `task update --update-trigger-token` stores
        task = tx.get("never-run")
        tx.put(replace(task, trigger=replace(task.trigger, base_image=replace(
            task.trigger.base_image, update_trigger_endpoint="http://127.0.0.1:9/hook",
            update_trigger_payload_type=UpdateTriggerPayloadType.TOKEN, update_trigger_token="hunter2-token"))))
    plain = run_cli("task", "export", "-n", "never-run")
    assert "hunter2-token" not in plain.out and plain.err.startswith("Left out the values of 1 secret")
    base = tomllib.loads(plain.out)["tasks"]["never-run"]["trigger"]["baseImageTrigger"]
    assert base["isUpdateTriggerTokenSet"] is True and "updateTriggerToken" not in base
    (tmp_path / "hooked.toml").write_text(plain.out)
    assert run_cli("task", "import", "-f", str(tmp_path / "hooked.toml"), "--replace").code == 0
    kept = stored(home)[0]["never-run"]["trigger"]["baseImageTrigger"]
    assert kept["updateTriggerToken"] == "hunter2-token"  # replaced from a file without it: the token stays
    assert run_cli("task", "import", "-f", str(tmp_path / "hooked.toml")).code == 2  # exists: needs --replace

"""task create/update/show/list/delete/timer through the CLI, against a state database in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli, state_dump, stored_task

REG = "localhost:5000"


def create(ctx: Path, name: str = "hello-world", *extra: str):
    return run_cli("task", "create", "-n", name, "-c", str(ctx), "-t", f"{REG}/hello:{{{{.Run.ID}}}}", *extra)


def test_create_has_az_defaults(home: Path, ctx: Path) -> None:
    result = create(ctx)
    assert result.code == 0, result.err
    task = result.json()
    assert task["name"] == "hello-world"
    assert task["status"] == "Enabled"
    assert task["platform"] == {"os": "linux", "architecture": "amd64"}
    assert task["timeout"] == 3600
    assert task["builder"] == "auto"
    assert task["step"]["dockerFilePath"] == "Dockerfile"
    assert task["step"]["contextPath"] == str(ctx)
    assert task["step"]["imageNames"] == ["localhost:5000/hello:{{.Run.ID}}"]
    assert task["step"]["isPushEnabled"] is True
    assert task["trigger"]["baseImageTrigger"] == {
        "baseImageTriggerType": "Runtime", "name": "defaultBaseimageTriggerName", "status": "Enabled"}
    assert task["trigger"]["sourceTriggers"] == []
    assert task["creationDate"].endswith("Z")


def test_update_disables_base_image_trigger_and_show_queries_it(home: Path, ctx: Path) -> None:
    assert create(ctx).code == 0
    assert run_cli("task", "update", "-n", "hello-world", "--base-image-trigger-enabled", "False").code == 0
    shown = run_cli("task", "show", "-n", "hello-world", "--query", "trigger.baseImageTrigger.status", "-o", "tsv")
    assert shown.code == 0
    assert shown.out == "Disabled\n"


def test_update_keeps_what_is_not_given(home: Path, ctx: Path) -> None:
    assert create(ctx, "hello-world", "--arg", "A=1", "--arg", "B=2", "--platform", "linux/arm64").code == 0
    result = run_cli("task", "update", "-n", "hello-world", "--arg", "B=3", "--base-image-trigger-type", "all")
    task = result.json()
    assert task["trigger"]["baseImageTrigger"]["baseImageTriggerType"] == "All"
    assert task["platform"]["architecture"] == "arm64"
    assert task["step"]["arguments"] == [{"name": "A", "value": "1", "isSecret": False},
                                         {"name": "B", "value": "3", "isSecret": False}]


def test_short_image_names_go_under_the_registry(home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As az stores them: short, with the task's registry beside them (runs push under it).
    result = run_cli("task", "create", "-n", "short-name", "-c", str(ctx), "-r", "myreg.azurecr.io", "-t", "app:v1")
    assert result.json()["step"]["imageNames"] == ["app:v1"]
    assert result.json()["registry"] == "myreg.azurecr.io"
    monkeypatch.setenv("ACRTASK_REGISTRY", "localhost:5000")
    result = run_cli("task", "create", "-n", "from-env", "-c", str(ctx), "-t", "team/app")
    assert result.json()["step"]["imageNames"] == ["team/app"]
    assert result.json()["registry"] == "localhost:5000"


def test_secret_values_are_never_printed(home: Path, ctx: Path) -> None:
    result = create(ctx, "with-secret", "--secret-arg", "TOKEN=hunter2-very-secret", "--arg", "FROM_ENV")
    assert "hunter2-very-secret" not in result.out + result.err
    args = result.json()["step"]["arguments"]
    assert {"name": "TOKEN", "isSecret": True} in args
    assert {"name": "FROM_ENV", "isSecret": False} in args
    for fmt in ("json", "yaml", "table", "tsv"):
        shown = run_cli("task", "show", "-n", "with-secret", "-o", fmt)
        assert "hunter2-very-secret" not in shown.out + shown.err
    # The value is kept (for builds), in a database only its owner can read, in a folder only they can enter.
    assert {"name": "TOKEN", "value": "hunter2-very-secret", "isSecret": True} in \
        stored_task(home, "with-secret")["step"]["arguments"]
    assert (home / "state.db").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700


def test_schedules_are_named_like_az(home: Path, ctx: Path) -> None:
    result = create(ctx, "with-timers", "--schedule", "0 3 * * Mon-Fri", "--schedule", "nightly:30 1 * * *",
                    "--schedule", "*/5 * * * *")
    timers = result.json()["trigger"]["timerTriggers"]
    assert [t["name"] for t in timers] == ["t1", "nightly", "t2"]
    assert timers[0] == {"name": "t1", "schedule": "0 3 * * Mon-Fri", "status": "Enabled"}


def test_timer_commands(home: Path, ctx: Path) -> None:
    assert create(ctx).code == 0
    # As az's, the changes return the task: --query trigger.timerTriggers works on them.
    added = run_cli("task", "timer", "add", "-n", "hello-world", "--timer-name", "nightly", "--schedule", "0 2 * * *",
                    "--query", "trigger.timerTriggers")
    assert added.json() == [{"name": "nightly", "schedule": "0 2 * * *", "status": "Enabled"}]
    updated = run_cli("task", "timer", "update", "-n", "hello-world", "--timer-name", "nightly", "--enabled", "False")
    assert updated.json()["name"] == "hello-world"
    assert updated.json()["trigger"]["timerTriggers"][0]["status"] == "Disabled"
    assert run_cli("task", "timer", "update", "-n", "hello-world", "--timer-name", "nightly", "--enabled",
                   "--query", "trigger.timerTriggers[0].status", "-o", "tsv").out == "Enabled\n"
    listed = run_cli("task", "timer", "list", "-n", "hello-world", "-o", "table")
    assert listed.out.splitlines()[0].split() == ["NAME", "SCHEDULE", "STATUS"]
    assert "nightly" in listed.out
    removed = run_cli("task", "timer", "remove", "-n", "hello-world", "--timer-name", "nightly")
    assert removed.json()["trigger"]["timerTriggers"] == []
    missing = run_cli("task", "timer", "remove", "-n", "hello-world", "--timer-name", "nightly")
    assert missing.code == 3
    assert missing.err == "ERROR: No timer triggers exist for the task 'hello-world'.\n"


def test_list_table_columns(home: Path, ctx: Path) -> None:
    assert create(ctx, "task-one", "--schedule", "0 3 * * *").code == 0
    assert create(ctx, "task-two", "--base-image-trigger-enabled", "false").code == 0
    table = run_cli("task", "list", "-o", "table").out.splitlines()
    assert table[0].split("  ")[0] == "NAME"
    assert [h.strip() for h in table[0].split("  ") if h.strip()] == [
        "NAME", "PLATFORM", "STATUS", "SOURCE REPOSITORY", "TRIGGERS"]
    assert table[2].startswith("task-one") and table[2].endswith("BASE_IMAGE, TIMER")
    assert table[3].startswith("task-two") and "BASE_IMAGE" not in table[3]


def test_output_formats(home: Path, ctx: Path) -> None:
    assert create(ctx).code == 0
    names = run_cli("task", "list", "--query", "[].name", "-o", "tsv")
    assert names.out == "hello-world\n"
    yaml_out = run_cli("task", "show", "-n", "hello-world", "-o", "yaml").out
    assert "name: hello-world" in yaml_out
    assert run_cli("task", "show", "-n", "hello-world", "-o", "none").out == ""
    assert run_cli("task", "show", "-n", "hello-world", "-o", "jsonc").json()["name"] == "hello-world"
    bad = run_cli("task", "list", "--query", "[?")
    assert bad.code == 2 and bad.err.startswith("ERROR: Invalid jmespath query supplied for `--query`")


def test_no_push_takes_an_optional_value(home: Path, ctx: Path) -> None:
    assert create(ctx, "bare-flag", "--no-push").json()["step"]["isPushEnabled"] is False
    assert create(ctx, "with-value", "--no-push", "False").json()["step"]["isPushEnabled"] is True


def test_delete(home: Path, ctx: Path) -> None:
    assert create(ctx).code == 0
    refused = run_cli("task", "delete", "-n", "hello-world")
    assert refused.code == 2 and "--yes" in refused.err
    assert run_cli("task", "delete", "-n", "hello-world", "--yes").code == 0
    assert run_cli("task", "list").json() == []


def test_git_url_context_gets_a_commit_trigger(home: Path) -> None:
    result = run_cli("task", "create", "-n", "from-git", "-c", "https://example.com/org/repo.git#main:src",
                     "-t", f"{REG}/app:v1")
    task = result.json()
    assert task["step"]["contextPath"] == "https://example.com/org/repo.git#main:src"
    source = task["trigger"]["sourceTriggers"][0]
    assert source["status"] == "Enabled"
    assert source["sourceRepository"]["branch"] == "main"
    assert run_cli("task", "list", "-o", "table").out.splitlines()[2].endswith("BASE_IMAGE, SOURCE")


# Each bad input: one ERROR line, the right exit code, and the state database unchanged.
BAD_INPUTS = [
    (["task", "create", "-n", "bad!", "-c", "{ctx}", "-t", f"{REG}/a:1"], 2, "Invalid task name 'bad!'"),
    (["task", "create", "-n", "abc", "-c", "{ctx}", "-t", f"{REG}/a:1"], 2, "Invalid task name 'abc'"),
    (["task", "show", "-n", "no-such-task"], 3, "The task 'no-such-task' could not be found."),
    (["task", "update", "-n", "no-such-task", "--status", "Disabled"], 3, "could not be found"),
    (["task", "create", "-n", "upper-case", "-c", "{ctx}", "-t", f"{REG}/MyApp:1"], 2, "must be lowercase"),
    (["task", "create", "-n", "empty-tag", "-c", "{ctx}", "-t", f"{REG}/app:"], 2, "Invalid image reference"),
    (["task", "create", "-n", "empty-image", "-c", "{ctx}", "-t", ""], 2, "cannot be empty"),
    (["task", "create", "-n", "bad-cron", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule", "61 * * * *"], 2,
     "Invalid cron schedule '61 * * * *'"),
    (["task", "create", "-n", "short-cron", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule", "* * *"], 2,
     "not 5"),
    (["task", "create", "-n", "bad-platform", "-c", "{ctx}", "-t", f"{REG}/a:1", "--platform", "linux/sparc"], 2,
     "sparc"),
    (["task", "create", "-n", "bad-bool", "-c", "{ctx}", "-t", f"{REG}/a:1", "--base-image-trigger-enabled",
      "maybe"], 2, "argument --base-image-trigger-enabled: invalid choice: 'maybe'"),
    (["task", "update", "-n", "existing", "--base-image-trigger-enabled", "maybe"], 2, "invalid choice: 'maybe'"),
    (["task", "create", "-n", "no-dockerfile", "-c", "{ctx}", "-f", "Missing.Dockerfile", "-t", f"{REG}/a:1"], 2,
     "Missing.Dockerfile does not exist."),
    (["task", "create", "-n", "bad-type", "-c", "{ctx}", "-t", f"{REG}/a:1", "--base-image-trigger-type", "x"], 2,
     "invalid choice: 'x'"),
    (["task", "create", "-n", "no-registry", "-c", "{ctx}", "-t", "app:v1"], 2, "does not say which registry"),
    (["task", "create", "-n", "existing", "-c", "{ctx}", "-t", f"{REG}/a:1"], 2, "already exists"),
    (["task", "create", "-n", "missing-ctx", "-c", "/nonexistent/ctx", "-t", f"{REG}/a:1"], 2, "is not a folder"),
    (["task", "create", "-c", "{ctx}"], 2, "Missing option '--name'"),
    (["task", "create", "-n", "bad-output", "-c", "{ctx}", "-o", "xml"], 2, "invalid choice: 'xml'"),
    # Issue 9, item 9: these were "Unexpected error" (exit 1) with Python's text.
    (["task", "create", "-n", "loop-ctx", "-c", "{tmp}/loop-a", "-t", f"{REG}/a:1"], 2, "/loop-a' cannot be resolved"),
    (["task", "create", "-n", "tilde-ctx", "-c", "~nosuchuser/x", "-t", f"{REG}/a:1"], 2,
     "the home folder in '~nosuchuser/x' is unknown"),
    (["task", "create", "-n", "bytes-ctx", "-c", "{tmp}/" + os.fsdecode(b"not-utf8-\xff"), "-t", f"{REG}/a:1"], 2,
     "argument -c: the value has bytes that are not UTF-8"),
    (["task", "create", "-n", "bytes-arg", "-c", "{ctx}", "-t", f"{REG}/a:1", "--arg", os.fsdecode(b"A=\xff")], 2,
     "argument --arg: the value has bytes that are not UTF-8"),
    (["task", "update", "-n", "existing", "--arg=" + os.fsdecode(b"A=\xfe")], 2, "argument --arg: the value"),
    # Item 10: accepted before, though invalid.
    (["task", "create", "-n", "-abcdef", "-c", "{ctx}", "-t", f"{REG}/a:1"], 2, "cannot start with a hyphen"),
    (["task", "create", "-n", "abcdef\n", "-c", "{ctx}", "-t", f"{REG}/a:1"], 2, "Invalid task name 'abcdef\\n'"),
    (["task", "create", "-n", "runid-host", "-c", "{ctx}", "-t", "{{.Run.ID}}.x/app:1"], 2,
     "{{.Run.ID}} can be in the repository or the tag, not in the registry's name"),
    (["task", "create", "-n", "huge-step", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule",
      "*/99999999999999999999 * * * *"], 2, "the minute field has a number that is far too large"),
    (["task", "create", "-n", "digits-4300", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule",
      "1-" + "9" * 5000 + " * * * *"], 2, "the minute field has a number that is far too large"),
    (["task", "create", "-n", "step-61", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule", "*/61 * * * *"], 2,
     "the minute step /61 is not between 1 and 60"),
    (["task", "create", "-n", "step-past", "-c", "{ctx}", "-t", f"{REG}/a:1", "--schedule", "0 */25 * * *"], 2,
     "the hour step /25 is not between 1 and 24"),
    (["task", "timer", "add", "-n", "existing", "--timer-name", "", "--schedule", "0 1 * * *"], 2,
     "Invalid timer name ''"),
    (["task", "timer", "add", "-n", "existing", "--timer-name", "a:b", "--schedule", "0 1 * * *"], 2,
     "Invalid timer name 'a:b'"),
    (["task", "create", "-n", "long-name", "-c", "{tmp}/" + "a" * 300, "-t", f"{REG}/a:1"], 2,
     "cannot be used: File name too long"),
    (["task", "create", "-n", "long-file", "-c", "{ctx}", "-f", "a" * 300, "-t", f"{REG}/a:1"], 2,
     "cannot be used as the Dockerfile: File name too long"),
    (["task", "create", "-n", "odd-target", "-c", "{ctx}", "-t", f"{REG}/a:1", "--target", "x\ny"], 2,
     "Invalid --target 'x\\ny'"),
    # Item 16: the right words for a folder, and one line for a name with a newline.
    (["task", "create", "-n", "folder-file", "-c", "{ctx}", "-f", ".", "-t", f"{REG}/a:1"], 2,
     "is a folder, not a Dockerfile"),
    (["task", "show", "-n", "two\nlines"], 3, "The task 'two\\nlines' could not be found."),
    (["task", "show", "-n", "escape\x1b[31m"], 3, "The task 'escape\\x1b[31m' could not be found."),
    # Item 11: refused as az refuses it, and no traceback although --debug is on the line.
    (["task", "show", "-n", "existing", "--only-show-errors", "--debug"], 2,
     "--only-show-errors can't be used together with --debug"),
]


@pytest.fixture
def odd_paths(tmp_path: Path) -> Path:
    """A symlink loop and a folder whose name is not UTF-8, beside the context."""
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/not-utf8-\xff"))
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM localhost:5000/base:1\n")
    return tmp_path


@pytest.mark.parametrize(("argv", "code", "message"), BAD_INPUTS, ids=[" ".join(b[0][:4]) for b in BAD_INPUTS])
def test_bad_input_leaves_state_untouched(home: Path, ctx: Path, odd_paths: Path, argv: list[str], code: int,
                                          message: str) -> None:
    assert create(ctx, "existing").code == 0
    before = state_dump(home)
    result = run_cli(*[a.replace("{ctx}", str(ctx)).replace("{tmp}", str(odd_paths)) for a in argv])
    assert result.code == code, result.err
    assert result.err.startswith("ERROR: ")
    assert result.err.count("\n") == 1, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert state_dump(home) == before


def _state_with(step: str = 'imageNames = ["localhost:5000/a:1"]', task: str = "") -> bytes:
    """A state file with one task, `app-build`, with `step` lines in its step and `task` lines in it."""
    return (f'schemaVersion = 1\n\n[tasks.app-build]\nname = "app-build"\n{task}\n'
            f'[tasks.app-build.step]\ncontextPath = "/tmp"\n{step}\n').encode()


BROKEN_STATES = [
    (b"schemaVersion = 1\n[tasks\n", "is corrupt"),
    (b"schemaVersion = 99\n", "schema version 99, newer than this acrtask understands"),
    # Issue 9, item 9: `tasks` that is not a table was an AttributeError.
    (b'schemaVersion = 1\ntasks = "oops"\n', "has 'tasks' that is not a table: it is a str"),
    (b"schemaVersion = 1\ntasks = [1, 2]\n", "has 'tasks' that is not a table: it is a list"),
    (b'schemaVersion = 1\n[tasks]\napp-build = "x"\n', "malformed task 'app-build': it is a str, not a table"),
    # Item 10: duplicate keys (tomllib refuses them), and lists that are not lists.
    (_state_with(task='status = "Enabled"\nstatus = "Disabled"'), "is corrupt: Cannot overwrite a value"),
    (_state_with(step='imageNames = "abc"'), "malformed task 'app-build': 'imageNames' must be a list, not str"),
    (_state_with(step="imageNames = 7"), "'imageNames' must be a list, not int"),
    (_state_with(step="imageNames = [1]"), "'imageNames' must be a list of strings"),
    (_state_with(step='arguments = "A=1"'), "'arguments' must be a list, not str"),
    (_state_with(task='trigger = "x"'), "'trigger' must be a table, not str"),
    (b'schemaVersion = 1\n[tasks.app-build]\nname = "app-build"\nstep = "x"\n', "'step' must be a table, not str"),
    (_state_with(step="arguments = [1]"), "'arguments' must be a list of tables"),
    (_state_with(step="dockerFilePath = 5"), "'dockerFilePath' must be a string, not int"),
    (_state_with(step='arguments = [{ name = 5 }]'), "'name' must be a string, not int"),
    (_state_with(task="timeout = inf"), "malformed task 'app-build': cannot convert float infinity to integer"),
    (b"schemaVersion = true\n", "has a schemaVersion that is not a number"),
    # Item 16: an invalid platform names the state file (the message starts with it) and the task.
    (_state_with(task='platform = { os = "linux", architecture = "sparc" }'), "sparc"),
    (_state_with(task='platform = "linux/amd64"'), "has a malformed task 'app-build'"),
]


@pytest.mark.parametrize(("content", "message"), BROKEN_STATES, ids=[m for _, m in BROKEN_STATES])
def test_broken_old_state_file_is_reported_and_kept(home: Path, ctx: Path, content: bytes, message: str) -> None:
    """A state.toml from before the database that does not read is not moved into it, nor changed."""
    home.mkdir(parents=True)
    state = home / "state.toml"
    state.write_bytes(content)
    for argv in (["task", "list"], ["task", "create", "-n", "new-task", "-c", str(ctx), "-t", f"{REG}/a:1"]):
        result = run_cli(*argv)
        assert result.code == 1
        assert result.err.startswith(f"ERROR: State file {state}")
        assert message in result.err
        assert result.err.count("\n") == 1
        assert state.read_bytes() == content
    assert not (home / "state.toml.migrated").exists()


def test_corrupt_state_error_names_the_line(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "state.toml").write_text('schemaVersion = 1\n\n[tasks.a]\nname = \n')
    result = run_cli("task", "list")
    assert "line 4" in result.err


def test_debug_shows_traceback(home: Path) -> None:
    result = run_cli("task", "show", "-n", "no-such-task", "--debug")
    assert result.code == 3
    assert "Traceback" in result.err


def test_twenty_concurrent_creates_lose_nothing(home: Path, ctx: Path) -> None:
    env = {**os.environ, "ACRTASK_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "acrtask", "task", "create", "-n", f"task-{i:02d}", "-c", str(ctx),
             "-t", f"{REG}/app{i}:v1", "-o", "none"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert run_cli("task", "list", "--query", "[].name").json() == [f"task-{i:02d}" for i in range(20)]

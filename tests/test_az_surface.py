"""az's surface without builds: -r names and scoping, three-state booleans, ignored flags, the JSON shapes
(`--query` paths from Azure's docs), git tokens and task credentials kept secret, run overrides, log follow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from acrtask import registries, runlogs, wiring, workspace
from acrtask.dependency import BaseImageDependency, DependencyType
from acrtask.errors import AcrTaskError, NotFoundError, ValidationError
from acrtask.model import Task
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.task_changes import RunOverrides
from tests.support.cli import run_cli

HOST = "localhost:5000"


def create(ctx: Path, name: str = "hello-world", *extra: str):
    return run_cli("task", "create", "-n", name, "-c", str(ctx), "-r", HOST, "-t", "hello:{{.Run.ID}}", *extra)


# -r/--registry


@pytest.mark.parametrize(("value", "aliases", "env", "expected"), [
    ("myregistry", {}, {}, "myregistry.azurecr.io"),
    ("MyRegistry", {}, {}, "myregistry.azurecr.io"),
    ("myregistry", {}, {"ACRTASK_REGISTRY_SUFFIX": "registry.example.com"}, "myregistry.registry.example.com"),
    ("myregistry", {}, {"ACRTASK_REGISTRY_SUFFIX": ".example.com:5000"}, "myregistry.example.com:5000"),
    ("myregistry", {"myregistry": "127.0.0.1:5000"}, {}, "127.0.0.1:5000"),
    ("localhost:5000", {}, {}, "localhost:5000"),
    ("localhost", {"localhost": "elsewhere:1"}, {}, "localhost"),  # a server is never an alias
    ("myreg.azurecr.io", {}, {}, "myreg.azurecr.io"),
    ("Index.Docker.IO", {}, {}, "docker.io"),
])
def test_registry_values_mean_what_az_means(value: str, aliases: dict, env: dict, expected: str) -> None:
    assert registries.login_server(value, aliases, env) == expected


@pytest.mark.parametrize("value", ["", "  ", "my/registry", "my registry", "-bad", "a" * 60])
def test_bad_registry_values_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        registries.login_server(value, {}, {})


def test_registry_aliases_scope_tasks(home: Path, ctx: Path) -> None:
    added = run_cli("registry", "add", "myregistry", HOST)
    assert added.json() == {"name": "myregistry", "loginServer": HOST}
    assert run_cli("registry", "list", "-o", "tsv").out == f"{HOST}\tmyregistry\n"  # az's tsv: keys sorted
    created = run_cli("task", "create", "-n", "aliased", "-c", str(ctx), "-r", "myregistry", "-t", "app:1")
    assert created.code == 0, created.err
    assert (created.json()["registry"], created.json()["step"]["imageNames"]) == (HOST, ["app:1"])
    templated = run_cli("task", "create", "-n", "templated", "-c", str(ctx), "-r", "myregistry",
                        "-t", "{{.Run.Registry}}/app:{{.Run.ID}}", "-t", "app:{{.Run.Date}}",
                        "--query", "step.imageNames")
    assert templated.json() == [f"{HOST}/app:{{{{.Run.ID}}}}", "app:{{.Run.Date}}"]  # the registry filled in now
    assert run_cli("task", "delete", "-n", "templated", "--yes").code == 0
    other = run_cli("task", "create", "-n", "on-azure", "-c", str(ctx), "-r", "otherreg", "-t", "app:1")
    assert other.json()["registry"] == "otherreg.azurecr.io"

    assert [t["name"] for t in run_cli("task", "list", "-r", "myregistry").json()] == ["aliased"]
    assert [t["name"] for t in run_cli("task", "list").json()] == ["aliased", "on-azure"]
    assert run_cli("task", "show", "-n", "aliased", "-r", HOST).code == 0
    hidden = run_cli("task", "show", "-n", "aliased", "-r", "otherreg")
    assert hidden.code == 3
    assert hidden.err.startswith("ERROR: The task 'aliased' could not be found in the registry otherreg.azurecr.io.")
    for argv in (["task", "run", "-n", "aliased"], ["task", "logs", "-n", "aliased"], ["task", "delete", "-n",
                 "aliased", "--yes"], ["task", "timer", "list", "-n", "aliased"], ["task", "credential", "list", "-n",
                 "aliased"], ["task", "update", "-n", "aliased", "--status", "Disabled"]):
        assert run_cli(*argv, "-r", "otherreg").code == 3, argv
    assert run_cli("registry", "remove", "myregistry").code == 0
    assert run_cli("registry", "remove", "myregistry").code == 3
    assert run_cli("task", "list", "-r", "myregistry").json() == []  # now myregistry.azurecr.io


def test_runs_are_scoped_by_their_task_registry(home: Path, ctx: Path) -> None:
    assert create(ctx, "task-one").code == 0
    store = wiring.Program().run_store
    task = wiring.Program().state_store.get("task-one")
    assert task is not None
    store.create(task, RunTrigger())
    store.create(replace(task, name="elsewhere", registry="other.azurecr.io"), RunTrigger())
    assert [r["runId"] for r in run_cli("task", "list-runs", "-r", HOST).json()] == ["ca1"]
    assert run_cli("task", "show-run", "--run-id", "ca2", "-r", HOST).code == 3
    assert run_cli("task", "show-run", "--run-id", "ca2", "-r", "other").json()["id"] == \
        "/registries/other.azurecr.io/runs/ca2"


# Booleans and flags az has


@pytest.mark.parametrize("flag", ["--base-image-trigger-enabled", "--no-push", "--no-cache",
                                  "--pull-request-trigger-enabled"])
def test_every_boolean_takes_a_bare_flag_or_a_value(home: Path, ctx: Path, flag: str) -> None:
    assert create(ctx, "bare-flag", flag).code == 0
    assert run_cli("task", "update", "-n", "bare-flag", flag, "FALSE").code == 0
    refused = run_cli("task", "update", "-n", "bare-flag", flag, "maybe")
    assert refused.code == 2 and f"argument {flag}: invalid choice: 'maybe'" in refused.err


def test_flags_with_no_local_meaning_are_taken_and_named_once(home: Path, ctx: Path) -> None:
    result = create(ctx, "ignored", "-g", "MyResourceGroup", "--cpu", "4", "--auth-mode", "None", "--agent-pool",
                    "pool", "--assign-identity", "[system]", "/subscriptions/x/identity", "--is-system-task",
                    "--log-template", "acr/tasks:{{.Run.OS}}", "--resource-group=rg", "--subscription", "sub")
    assert result.code == 0, result.err
    assert result.err == ("WARNING: Ignored here (no meaning outside Azure): -g, --cpu, --auth-mode, --agent-pool, "
                          "--assign-identity, --is-system-task, --log-template, --resource-group, --subscription.\n")
    quiet = run_cli("task", "show", "-n", "ignored", "-g", "rg", "--only-show-errors")
    assert (quiet.code, quiet.err) == (0, "")


def test_trigger_names_pull_requests_and_a_trigger_created_off(home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "Dockerfile").write_text("FROM localhost:5000/base:1\n")
    result = run_cli("task", "create", "-n", "named", "-c", str(repo), "-r", HOST, "-t", "app:1",
                     "--base-image-trigger-name", "mybase", "--source-trigger-name", "mysource",
                     "--pull-request-trigger-enabled")
    assert result.code == 0, result.err
    assert "Pull-request triggers are recorded but not run here" in result.err
    trigger = result.json()["trigger"]
    assert trigger["baseImageTrigger"]["name"] == "mybase"
    assert trigger["sourceTriggers"][0]["name"] == "mysource"
    assert trigger["sourceTriggers"][0]["sourceTriggerEvents"] == ["commit", "pullrequest"]

    off = run_cli("task", "create", "-n", "created-off", "-c", str(repo), "-r", HOST, "-t", "app:1",
                  "--base-image-trigger-enabled", "false")
    assert off.json()["trigger"]["baseImageTrigger"] is None  # az sends no trigger: null, as az shows it
    assert run_cli("task", "show", "-n", "created-off", "--query", "trigger.baseImageTrigger.status",
                   "-o", "tsv").out == ""
    table = run_cli("task", "show", "-n", "created-off", "-o", "table").out
    assert "BASE_IMAGE" not in table and "SOURCE" in table
    back = run_cli("task", "update", "-n", "created-off", "--base-image-trigger-enabled", "true")
    assert back.json()["trigger"]["baseImageTrigger"]["status"] == "Enabled"


# JSON shapes and --query paths from Azure's docs


def _seed(home: Path, ctx: Path) -> None:
    assert create(ctx, "baseexample1", "--schedule", "0 21 * * *").code == 0
    store = wiring.Program().state_store
    deps = (BaseImageDependency(DependencyType.RUNTIME, ImageRef(HOST, "baseimages/node", "15-alpine"),
                                "sha256:" + "a" * 64),
            BaseImageDependency(DependencyType.BUILD_TIME, ImageRef(HOST, "tools", "1"), "sha256:" + "b" * 64))
    assert store.record_dependencies("baseexample1", deps)
    runs = wiring.Program().run_store
    task = store.get("baseexample1")
    assert task is not None
    first = runs.create(task, RunTrigger())
    runs.finish(first, RunStatus.SUCCEEDED, output_images=(ImageRef(HOST, "hello", "ca1", "sha256:" + "c" * 64),))
    runs.create(task, RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE,
                                 base_image=ImageRef.parse(f"{HOST}/baseimages/node:15-alpine"),
                                 old_digest="sha256:" + "a" * 64, new_digest="sha256:" + "d" * 64))


@pytest.mark.parametrize(("argv", "expected"), [
    (["task", "show", "-n", "baseexample1", "--query", "step.baseImageDependencies[?type=='RunTime'].repository"],
     ["baseimages/node"]),
    (["task", "show", "-n", "baseexample1", "--query", "step.baseImageDependencies[?type=='BuildTime'].tag"], ["1"]),
    (["task", "show", "-n", "baseexample1", "--query", "trigger.timerTriggers"],
     [{"name": "t1", "schedule": "0 21 * * *", "status": "Enabled"}]),
    (["task", "show", "-n", "baseexample1", "--query", "trigger.baseImageTrigger.baseImageTriggerType"], "Runtime"),
    (["task", "show", "-n", "baseexample1", "--query", "[id, type, provisioningState]"],
     [f"/registries/{HOST}/tasks/baseexample1", "Microsoft.ContainerRegistry/registries/tasks", "Succeeded"]),
    (["task", "show", "-n", "baseexample1", "--query", "identity.principalId"], None),
    (["task", "list", "--query", "[?status=='Enabled'].name"], ["baseexample1"]),
    (["task", "list-runs", "--query", "[0].runId"], "ca2"),
    (["task", "list-runs", "--query", "[].runType"], ["AutoRun", "AutoRun"]),  # task runs; Quick* have no task
    (["task", "list-runs", "--run-status", "Succeeded", "--query", "[].runId"], ["ca1"]),
    (["task", "show-run", "--run-id", "ca1", "--query", "[status, outputImages[0].tag, type]"],
     ["Succeeded", "ca1", "Microsoft.ContainerRegistry/registries/runs"]),
    (["task", "show-run", "--run-id", "ca2", "--query", "imageUpdateTrigger.images[0].[repository, tag]"],
     ["baseimages/node", "15-alpine"]),
    (["task", "show-run", "--run-id", "ca2", "--query", "[reason, trigger.kind]"],
     ["base image localhost:5000/baseimages/node:15-alpine changed: aaaaaaaaaaaa -> dddddddddddd",
      "BaseImageUpdate"]),
])
def test_queries_from_azure_docs(home: Path, ctx: Path, argv: list[str], expected: object) -> None:
    _seed(home, ctx)
    result = run_cli(*argv)
    assert result.code == 0, result.err
    assert result.json() == expected


def test_run_shape_has_what_az_fills(home: Path, ctx: Path) -> None:
    _seed(home, ctx)
    triggered = run_cli("task", "show-run", "--run-id", "ca2").json()
    update = triggered["imageUpdateTrigger"]
    assert update["timestamp"] == triggered["createTime"] == triggered["lastUpdatedTime"]
    assert len(update["id"]) == 36  # one id per base update, a GUID as ACR's
    done = run_cli("task", "show-run", "--run-id", "ca1").json()
    assert done["lastUpdatedTime"] == done["finishTime"]


def test_old_dependency_spelling_is_read(tmp_path: Path) -> None:
    dep = BaseImageDependency.from_dict({"type": "Runtime", "registry": HOST, "repository": "a", "tag": "1"})
    assert dep.type is DependencyType.RUNTIME and dep.to_dict()["type"] == "RunTime"


# Secrets: the git token and task credentials


def test_git_token_is_kept_secret(home: Path, ctx: Path) -> None:
    result = create(ctx, "with-token", "--git-access-token", "ghp_very-secret-token")
    assert result.code == 0 and "ghp_very-secret-token" not in result.out + result.err
    assert result.json()["step"]["contextAccessToken"] is None
    for fmt in ("json", "yaml", "table", "tsv"):
        shown = run_cli("task", "show", "-n", "with-token", "-o", fmt)
        assert "ghp_very-secret-token" not in shown.out + shown.err
    revealed = run_cli("task", "show", "-n", "with-token", "--with-secure-properties",
                       "--query", "step.contextAccessToken")
    assert revealed.json() == "ghp_very-secret-token"


def test_git_token_reaches_git_through_its_environment_for_https_only() -> None:
    env = workspace.git_auth_env("https://user@github.com/org/repo.git", "tok", {"PATH": "/bin"})
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic eC1hY2Nlc3MtdG9rZW46dG9r"  # x-access-token:tok
    chained = workspace.git_auth_env("https://host/r.git", "tok", {"GIT_CONFIG_COUNT": "2"})
    assert chained["GIT_CONFIG_COUNT"] == "3" and "GIT_CONFIG_KEY_2" in chained
    for location in ("http://host/r.git", "git@host:r.git", "/local/repo", "ssh://host/r.git"):
        assert workspace.git_auth_env(location, "tok", {"PATH": "/bin"}) == {"PATH": "/bin"}
    assert workspace.git_auth_env("https://host/r.git", None, {}) == {}


def test_credential_commands_check_their_input(home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create(ctx, "with-login").code == 0
    base = ["task", "credential", "add", "-n", "with-login", "--login-server", "LocalHost:5001"]
    assert run_cli(*base, "-u", "alice").code == 2  # no password
    assert run_cli(*base).code == 2  # nothing at all
    added = run_cli(*base, "-u", "alice", "-p", "pw-1234567")
    assert added.code == 0 and "pw-1234567" not in added.out + added.err
    assert list(added.json()) == ["localhost:5001"]
    again = run_cli(*base, "-u", "alice", "-p", "pw-1234567")
    assert again.code == 2
    assert again.err.startswith("ERROR: Login server 'localhost:5001' already exists. You cannot add it again.")
    monkeypatch.setenv("ACRTASK_CREDENTIAL_PASSWORD", "pw-from-env")
    updated = run_cli("task", "credential", "update", "-n", "with-login", "--login-server", "localhost:5001",
                      "-u", "bob")
    assert updated.json()["localhost:5001"]["userName"]["value"] == "bob"
    task = wiring.Program().state_store.get("with-login")
    assert task is not None
    assert [(c.username, c.password) for c in task.credentials] == [("bob", "pw-from-env")]
    assert "pw-from-env" not in repr(task)
    missing = run_cli("task", "credential", "update", "-n", "with-login", "--login-server", "nowhere:1", "-u", "x")
    assert missing.code == 3


# task run -c -f --target, and logs


def test_run_overrides_are_checked_like_create(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile.dev").write_text("FROM x AS test\n")
    task = Task.from_dict({"name": "app-task", "step": {"contextPath": str(ctx)}})
    changed = RunOverrides(file="Dockerfile.dev", target="test").apply(task)
    assert (changed.step.docker_file_path, changed.step.target) == ("Dockerfile.dev", "test")
    assert RunOverrides().apply(task) is task
    with pytest.raises(ValidationError, match="does not exist"):
        RunOverrides(file="Missing").apply(task)
    with pytest.raises(ValidationError):
        RunOverrides(target="1bad").apply(task)
    copy = Task.from_dict({"name": "copy-task", "step": {"contextPath": "", "importSource": "docker.io/library/a:1",
                                                          "imageNames": [f"{HOST}/a:1"]}})
    with pytest.raises(ValidationError, match="copy task"):
        RunOverrides(context=str(tmp_path)).apply(copy)


def _run(status: RunStatus, pid: int | None = None) -> Run:
    return Run("ca1", "app-task", status, RunTrigger(), "2026-01-01T00:00:00Z", pid=pid)


def test_follow_writes_the_log_as_it_grows_until_the_run_ends(tmp_path: Path) -> None:
    log = tmp_path / "ca1.log"
    states = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    written: list[str] = []

    def record() -> Run:
        status = states.pop(0) if len(states) > 1 else states[0]
        if status is RunStatus.RUNNING and not log.exists():
            log.write_bytes("first line é\n".encode()[:-2])  # a character cut by a read
        elif status is RunStatus.SUCCEEDED and not written[-1].endswith("successful after 1s\n"):
            with log.open("ab") as handle:
                handle.write("é\nRun ID: ca1 was successful after 1s\n".encode()[1:])
        return _run(status)

    final = runlogs.follow(log, record, written.append, sleep=lambda s: None)
    assert final.status is RunStatus.SUCCEEDED
    assert "".join(written) == "first line é\nRun ID: ca1 was successful after 1s\n"


def test_follow_stops_when_the_runs_process_is_gone(tmp_path: Path) -> None:
    gone = 2 ** 22 + 12345  # above any pid this machine gives out
    with pytest.raises(AcrTaskError, match="is gone"):
        runlogs.follow(tmp_path / "none.log", lambda: _run(RunStatus.RUNNING, gone), lambda text: None,
                       sleep=lambda s: None)


def test_logs_of_an_unknown_run_is_not_found(home: Path) -> None:
    result = run_cli("task", "logs", "--run-id", "ca9")
    assert result.code == 3
    with pytest.raises(NotFoundError):
        wiring.Program().run_store.get("ca9")

"""The pure parts of multi-step tasks, by tables: templates, aliases, build arguments, step order, argv."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from acrtask.errors import ValidationError
from acrtask.multistep import document, engine, graph, templates
from acrtask.multistep.buildcmd import BuildCommand, parse_build
from acrtask.multistep.errors import TaskFileError
from acrtask.multistep.executor import Ending, Executor, StepContext
from acrtask.run_record import StepStatus

RUN = templates.RunValues(id="ca7", registry="myreg.azurecr.io:443", date="20240305-060708z", commit="abc",
                          branch="main", task_name="app-task", shared_volume="/tmp/run")


@pytest.mark.parametrize(("text", "expected"), [
    ("{{.Run.ID}}", "ca7"),
    ("{{ .Run.Registry }}/app", "myreg.azurecr.io:443/app"),
    ("{{.Run.RegistryName}}", "myreg"),
    ("{{.Build.ID}}-{{.Run.Date}}-{{.Run.Commit}}-{{.Run.Branch}}", "ca7-20240305-060708z-abc-main"),
    ("{{.Run.OS}}/{{.Run.Architecture}} {{.Run.TaskName}} {{.Run.SharedVolume}}", "linux/amd64 app-task /tmp/run"),
    ("tag: {{.Values.tag}} {{.Values.deep.name}} {{.Values.flag}} {{.Values.none}}.", "tag: v1 nested true ."),
    ("{{.Secrets.token | b64enc}}", "czNjcmV0"),
    ("a  {{- .Run.ID -}}  b", "aca7b"),
    ("no templates, }} here", "no templates, }} here"),
])
def test_templates_fill_in_fields(text: str, expected: str) -> None:
    values = {"tag": "v1", "deep": {"name": "nested"}, "flag": True, "none": None}
    assert templates.render(text, RUN.fields(), values, {"token": "s3cret"}) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("{{if .Values.x}}y{{end}}", "Template action {{if .Values.x}} is not supported"),
    ("{{range .Values.list}}", "is not supported"),
    ("{{.Values.x | upper}}", "of Go's template functions only 'b64enc' is"),
    ("{{ printf \"%s\" .Run.ID }}", "is not supported"),
    ("{{.Run.Nope}}", "Unknown run variable {{.Run.Nope}}"),
    ("{{.Values.missing}}", "{{.Values.missing}} has no value: 'missing' is not set"),
    ("{{.Values.deep}}", "is a table, not a value"),
    ("{{.Secrets.nope}}", "no secret 'nope' was given"),
    ("x {{.Run.ID", "A '{{' is never closed"),
])
def test_templates_refuse_what_they_cannot_do(text: str, message: str) -> None:
    with pytest.raises(templates.TemplateError) as error:
        templates.render(text, RUN.fields(), {"deep": {"a": 1}}, {})
    assert message in str(error.value)


def test_registry_needed_but_missing_says_so() -> None:
    with pytest.raises(templates.TemplateError, match="the task has no registry"):
        templates.render("{{.Run.Registry}}/x", templates.RunValues(id="ca1").fields())


@pytest.mark.parametrize(("registry", "name"), [
    ("myregistry.azurecr.io", "myregistry"), ("localhost:5000", "localhost"), ("127.0.0.1:5000", "127.0.0.1"),
    ("registry", "registry"), ("[::1]", "[::1]"),
    ("[::1]:5000", "[::1]"),  # without its port, as for 127.0.0.1:5000 (a copy of the host rule kept it)
])
def test_registry_name(registry: str, name: str) -> None:
    assert templates.registry_name(registry) == name


@pytest.mark.parametrize(("text", "expected"), [
    ("$Registry/app:$ID", "{{.Run.Registry}}/app:{{.Run.ID}}"),
    ("$repo/x $HOME $$HOME $$$repo", "myrepo/x $HOME $HOME $myrepo"),
    ("cost: 5$", "cost: 5$"),
])
def test_aliases_expand_known_names_only(text: str, expected: str) -> None:
    assert templates.expand_aliases(text, {**templates.DEFAULT_ALIASES, "repo": "myrepo"}) == expected


def test_stable_names_leave_out_names_that_change_per_run() -> None:
    stable = templates.stable_name("{{.Run.Registry}}/base:{{.Run.TaskName}}", RUN)
    assert stable == "myreg.azurecr.io:443/base:app-task"
    assert templates.stable_name("r.io/app:{{.Run.ID}}", RUN) is None
    assert templates.stable_name("r.io/app:{{.Run.Date}}", RUN) is None


@pytest.mark.parametrize(("text", "expected"), [
    (".", BuildCommand(context=".")),
    ("-t a:1 --tag=b:2 -tc:3 -f df --build-arg X=1 --build-arg Y --target t --platform linux/arm64 "
     "--label k=v --no-cache --pull sub",
     BuildCommand(context="sub", tags=("a:1", "b:2", "c:3"), file="df", build_args=(("X", "1"), ("Y", None)),
                  target="t", platform="linux/arm64", labels=(("k", "v"),), no_cache=True, pull=True)),
    ("--image x:1 --no-cache=false 'a folder'", BuildCommand(context="a folder", tags=("x:1",))),
])
def test_build_arguments(text: str, expected: BuildCommand) -> None:
    assert parse_build(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("-t a:1", "there is no build context"),
    ("-t a:1 one two", "2 build contexts"),
    ("--network host .", "the docker build option --network is not supported"),
    ("-f", "-f needs a value"),
    ("-f a -f b .", "--file is given 2 times"),
    ("https://github.com/x/y.git", "is a URL"),
    ("--build-arg 1X=2 .", "does not start with a valid name"),
    ("'unbalanced .", "cannot be split into words"),
])
def test_build_arguments_refused(text: str, message: str) -> None:
    with pytest.raises(TaskFileError, match=message):
        parse_build(text, line=4)


def nodes(*specs: tuple[str, tuple[str, ...] | None]) -> list[graph.Node]:
    return [graph.Node(step_id, when, index + 1) for index, (step_id, when) in enumerate(specs)]


@pytest.mark.parametrize(("specs", "needs", "sequential"), [
    ([("a", None), ("b", None), ("c", None)], {"a": (), "b": ("a",), "c": ("b",)}, True),
    ([("a", ("-",)), ("b", ("-",)), ("c", ("a", "b"))], {"a": (), "b": (), "c": ("a", "b")}, False),
    ([("a", None), ("b", ("-",)), ("c", None)], {"a": (), "b": (), "c": ("b",)}, False),
    ([("a", ("c",)), ("b", None), ("c", ("-",))], {"a": ("c",), "b": ("a",), "c": ()}, False),  # forward, unlike ACR
])
def test_when_ordering(specs: list, needs: dict, sequential: bool) -> None:
    found = graph.prerequisites(nodes(*specs))
    assert found == needs
    assert graph.is_sequential([s[0] for s in specs], found) is sequential


@pytest.mark.parametrize(("specs", "message"), [
    ([("a", ("-", "b")), ("b", None)], "cannot be combined with step ids"),
    ([("a", ("a",))], "waits for itself"),
    ([("a", ("x",))], "waits for step 'x', which does not exist"),
    ([("a", ("c",)), ("b", ("a",)), ("c", ("b",))], "cycle: a -> b -> c -> a"),
])
def test_when_refusals(specs: list, message: str) -> None:
    with pytest.raises(TaskFileError, match=message):
        graph.prerequisites(nodes(*specs))


def test_a_document_qualifies_names_and_resolves_image_aliases() -> None:
    text = ("version: v1.1.0\nalias:\n  values:\n    tool: r.io/tools/tool:1\nsteps:\n"
            "  - build: -t app:$ID .\n  - push: [app:$ID]\n  - cmd: app:$ID run\n  - cmd: tool --help\n"
            "  - cmd: bash -c true\n")
    loaded = document.load(text, "f.yaml", RUN, document.inputs(None, "", []), "myreg.azurecr.io:443")
    build, push, run_built, tool, bash = loaded.file.steps
    assert build.build.tags == push.push == ("myreg.azurecr.io:443/app:ca7",)
    assert run_built.cmd == ("myreg.azurecr.io:443/app:ca7", "run")
    assert tool.cmd == ("r.io/tools/tool:1", "--help")
    assert bash.cmd[0] == "mcr.microsoft.com/acr/bash:9fb281c"
    with pytest.raises(ValidationError, match=r"f.yaml, line 2: 'alias' needs version: v1.1.0"):
        document.load(text.replace("v1.1.0", "v1.0.0"), "f.yaml", RUN, document.inputs(None, "", []), None)


def test_values_file_then_set_then_set_secret() -> None:
    given = document.inputs("tag: file\nkeep: yes-from-file\n", "values.yaml", [("tag", "set", False),
                                                                                ("token", "t0k", True)])
    assert given.values == {"tag": "set", "keep": "yes-from-file", "token": "t0k"}
    assert given.secrets == {"token": "t0k"}
    with pytest.raises(ValidationError, match="values.yaml must be a mapping"):
        document.inputs("- a\n", "values.yaml", [])


CONTAINER = engine.Container(name="acrtask-ca1-test", image="r.io/app:1", args=("sh", "-c", "echo hi"),
                             env=(("A", "1"),), workdir="/workspace/sub", user="1000",
                             mounts=(("/tmp/run", "/workspace", False), ("/tmp/vol", "/secrets", True)),
                             insecure=True)


def test_engine_argument_lists() -> None:
    assert engine.from_argv(CONTAINER) == ["buildah", "from", "--name", "acrtask-ca1-test", "--pull=missing",
                                           "--tls-verify=false", "r.io/app:1"]
    assert engine.buildah_run_argv(CONTAINER, ["sh", "-c", "echo hi"]) == [
        "buildah", "run", "--workingdir", "/workspace/sub", "--user", "1000", "-e", "A=1",
        "-v", "/tmp/run:/workspace", "-v", "/tmp/vol:/secrets:ro", "acrtask-ca1-test", "--", "sh", "-c", "echo hi"]
    assert engine.run_argv("docker", CONTAINER) == [
        "docker", "run", "--name", "acrtask-ca1-test", "--pull=missing", "--rm", "-w", "/workspace/sub",
        "--user", "1000", "-e", "A=1", "-v", "/tmp/run:/workspace", "-v", "/tmp/vol:/secrets:ro", "r.io/app:1", "sh",
        "-c", "echo hi"]
    assert "--tls-verify=false" in engine.run_argv("podman", CONTAINER)
    assert engine.push_argv("buildah", "r.io/a:1", True, Path("/d")) == [
        "buildah", "push", "--format", "oci", "--digestfile", "/d", "--tls-verify=false", "r.io/a:1",
        "docker://r.io/a:1"]
    assert engine.push_argv("docker", "r.io/a:1", True, Path("/d")) == ["docker", "push", "r.io/a:1"]


@pytest.mark.parametrize(("config", "entry_point", "args", "expected"), [
    ({"Entrypoint": ["/entry"], "Cmd": ["default"]}, None, (), ["/entry", "default"]),
    ({"Entrypoint": ["/entry"], "Cmd": ["default"]}, None, ("given",), ["/entry", "given"]),
    ({"Cmd": ["sh"]}, None, ("echo", "hi"), ["echo", "hi"]),
    ({"Entrypoint": ["/entry"], "Cmd": ["default"]}, "/bin/sh", ("-c", "x"), ["/bin/sh", "-c", "x"]),
    ({}, None, (), []),
])
def test_command_line_is_what_docker_run_runs(config: dict, entry_point: str | None, args: tuple,
                                              expected: list[str]) -> None:
    assert engine.command_line(config, entry_point, args) == expected


def run_executor(text: str, perform, cancel: threading.Event | None = None):  # noqa: ANN001, ANN201
    loaded = document.load(text, "f.yaml", RUN, document.inputs(None, "", []), "r.io")
    lines: list[str] = []
    executor = Executor(loaded, perform, lines.append, cancel or threading.Event(), total_timeout=None,
                        now=lambda: "2024-01-01T00:00:00Z", on_change=lambda records: None)
    return executor.run(), lines


def test_executor_retries_repeats_and_ignores_errors() -> None:
    calls: list[str] = []

    def perform(context: StepContext) -> None:
        calls.append(context.step.id)
        if context.step.id == "flaky" and calls.count("flaky") < 3:
            raise ValidationError("not yet")
        if context.step.id == "broken":
            raise ValidationError("always broken")

    outcome, lines = run_executor("steps:\n  - {id: flaky, retries: 2, cmd: x}\n  - {id: again, repeat: 2, cmd: x}\n"
                                  "  - {id: broken, ignoreErrors: true, cmd: x}\n  - {id: last, cmd: x}\n", perform)
    assert outcome.ending is Ending.SUCCEEDED
    assert calls == ["flaky"] * 3 + ["again"] * 3 + ["broken", "last"]
    assert outcome.records["broken"].status is StepStatus.SUCCESSFUL
    assert outcome.records["broken"].error == "always broken"
    assert "Step ID: broken encountered an error: always broken, but is set to ignore errors. Continuing..." in lines


def test_executor_stops_at_a_failure_and_skips_what_follows() -> None:
    def perform(context: StepContext) -> None:
        if context.step.id == "bad":
            raise ValidationError("boom")

    outcome, _ = run_executor("steps:\n  - {id: bad, retries: 1, cmd: x}\n  - {id: next, cmd: x}\n", perform)
    assert outcome.ending is Ending.FAILED
    assert outcome.error == "Step ID: bad failed: boom"
    assert outcome.records["next"].status is StepStatus.SKIPPED


def test_executor_runs_dash_steps_at_once() -> None:
    both_started = threading.Barrier(2, timeout=30)  # each waits for the other: only parallel steps pass

    def perform(context: StepContext) -> None:
        if context.step.id in ("one", "two"):
            both_started.wait()

    outcome, lines = run_executor("steps:\n  - {id: one, when: ['-'], cmd: x}\n  - {id: two, when: ['-'], cmd: x}\n"
                                  "  - {id: three, when: [one, two], cmd: x}\n", perform)
    assert outcome.ending is Ending.SUCCEEDED
    assert lines[-1].startswith("Step ID: three marked as successful")

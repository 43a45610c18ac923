"""Pure helpers of a run: build arguments, run ids in tags, which registries are plain HTTP."""

from __future__ import annotations

from acrtask.model import Argument, Step, Task
from acrtask.run_record import Run, RunStatus, RunTrigger
from acrtask.runner import build_arguments, fill_in
from tests.support.runner import offline_runner


def test_build_arguments_take_missing_values_from_the_environment() -> None:
    args = (Argument("A", "1"), Argument("FROM_ENV"), Argument("TOKEN", "s3cret", is_secret=True),
            Argument("UNSET"))
    plain, secret = build_arguments(args, {"FROM_ENV": "env-value"})
    assert plain == {"A": "1", "FROM_ENV": "env-value", "UNSET": ""}
    assert secret == {"TOKEN": "s3cret"}


def test_fill_in_takes_every_run_variable_in_a_tag() -> None:
    task = Task(name="app-task", step=Step(context_path="/x"), registry="myreg.azurecr.io")
    run = Run("ca7", "app-task", RunStatus.RUNNING, RunTrigger(), "2024-03-05T01:02:03.000000Z",
              start_time="2024-03-05T06:07:08.000000Z")
    assert fill_in("r.io/app:{{.Run.ID}}", task, run, None) == "r.io/app:ca7"
    assert fill_in("{{.Run.Registry}}/{{ .Run.TaskName }}:{{.Run.Date}}-{{.Run.Commit}}", task, run, "abc") == (
        "myreg.azurecr.io/app-task:20240305-060708z-abc")


def test_an_unexpected_failure_still_ends_the_run_recorded_and_redacted(tmp_path) -> None:
    from acrtask.model import Step, Task
    from acrtask.run_record import RunStatus, RunTrigger

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")

    def broken_builder(task, run):
        raise RuntimeError("builder exploded holding hunter2-secret")

    runner, cancel = offline_runner(tmp_path, broken_builder)
    task = Task(name="boom-task", step=Step(context_path=str(ctx), image_names=("r.io/a:1",),
                                            arguments=(Argument("TOKEN", "hunter2-secret", is_secret=True),)))
    lines: list[str] = []
    finished = runner.execute(runner.queue(task, RunTrigger()), task, lines.append, cancel)
    assert finished.status is RunStatus.ERROR
    assert finished.error == "RuntimeError: builder exploded holding ***"
    assert runner.runs.get(finished.run_id).status is RunStatus.ERROR
    assert "hunter2-secret" not in "\n".join(lines) + runner.runs.log_path(finished.run_id).read_text()

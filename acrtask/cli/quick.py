"""`acrtask build` and `acrtask run`: az acr build / az acr run, a run without a task.

Each is checked as `task create` checks a task (bad input: exit 2, nothing recorded), then recorded
as a run (runType QuickBuild / QuickRun, no task name) that `task list-runs` and `task logs` show.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from acrtask import validate, wiring
from acrtask.cli import scope
from acrtask.cli.runs import _stderr, execute_and_report
from acrtask.cli.task import Builder, Cmd, PlatformOpt, Registry, SetSecrets, SetValues, Target, Timeout, ValuesFile
from acrtask.errors import ValidationError
from acrtask.model import BuilderName
from acrtask.multistep import kinds
from acrtask.platform import Platform
from acrtask.run_record import RunTrigger, RunType
from acrtask.task_changes import TaskChanges

NoLogs = Annotated[bool, typer.Option("--no-logs", help="Do not stream the log; print the run when it ends.")]


def _run(changes: TaskChanges, run_type: RunType, no_logs: bool) -> None:
    service = wiring.program().run_service
    task = service.tasks.quick(changes)
    queued = service.queue(task, RunTrigger(), run_type)
    _stderr(f"Queued a run with ID: {queued.run_id}")
    execute_and_report(service, queued, task, (), no_logs)


def build(
    source: Annotated[str, typer.Argument(help="The build context: a local folder, or a git URL #branch:folder.",
                                          metavar="SOURCE_LOCATION")],
    registry: Registry = None,
    image: Annotated[list[str] | None, typer.Option(
        "--image", "-t", help="A tag to build and push, e.g. app:{{.Run.ID}}. Repeatable.")] = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="The Dockerfile, relative to the context.")] = None,
    build_arg: Annotated[list[str] | None, typer.Option("--build-arg", help="NAME[=VALUE]. Repeatable.")] = None,
    secret_build_arg: Annotated[list[str] | None, typer.Option(
        "--secret-build-arg", help="A secret NAME[=VALUE], never printed. Repeatable.")] = None,
    target: Target = None, platform: PlatformOpt = None,
    no_push: Annotated[bool, typer.Option("--no-push", help="Build only.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build without the layer cache.")] = False,
    timeout: Timeout = None, builder: Builder = None, no_logs: NoLogs = False,
) -> None:
    """Build an image once and push it, without a task (az acr build): recorded as a QuickBuild run."""
    if target is not None:
        validate.stage_name(target)
    arguments = tuple(validate.argument(a, False) for a in build_arg or ()) + tuple(
        validate.argument(a, True) for a in secret_build_arg or ())
    if file is not None and file.lower().endswith((".yaml", ".yml")):
        raise ValidationError(f"-f {file} is a task file; acrtask build builds a Dockerfile.",
                              f"Run it with: acrtask run -f {file} -c {source}")
    changes = TaskChanges(
        context=source, file=file, images=tuple(image or ()),  # checked by the service, under -r
        arguments=arguments, target=target, platform=Platform.parse(platform) if platform else None,
        push_enabled=not no_push, no_cache=no_cache, timeout=validate.timeout(timeout) if timeout is not None else None,
        builder=validate.enum_value(BuilderName, builder, "--builder") if builder else None,
        registry=scope.login_server(registry),
    )
    _run(changes, RunType.QUICK_BUILD, no_logs)


def run(
    source: Annotated[str | None, typer.Argument(
        help="The context: a local folder, a git URL, or /dev/null (the default) for none.",
        metavar="[SOURCE_LOCATION]")] = None,
    context: Annotated[str | None, typer.Option("--context", "-c", help="The context, as SOURCE_LOCATION.")] = None,
    registry: Registry = None,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", help="The task file: relative to the context, or a local file (- for standard input) with "
        "no context. Default: acb.yaml.")] = None,
    set_value: SetValues = None, set_secret: SetSecrets = None, values: ValuesFile = None, cmd: Cmd = None,
    platform: PlatformOpt = None, timeout: Timeout = None, builder: Builder = None, no_logs: NoLogs = False,
) -> None:
    """Run a multi-step task file (or --cmd) once, without a task (az acr run): recorded as a QuickRun run."""
    from acrtask.multistep import tasks as multistep_tasks

    if source is not None and context is not None and source != context:
        raise ValidationError("Give the context once: as SOURCE_LOCATION or as -c/--context.")
    where = context or source or kinds.NO_CONTEXT
    if cmd is not None and file is not None:
        raise ValidationError("Give either --cmd or -f/--file, not both.")
    if cmd is None and where != kinds.NO_CONTEXT and not kinds.is_task_file(file or "acb.yaml"):
        raise ValidationError(f"-f {file} is not a task file (.yaml).",
                              f"Build a Dockerfile with: acrtask build -f {file} {where}")
    task_values = tuple(multistep_tasks.value(v, "--set", False) for v in set_value or ()) + tuple(
        multistep_tasks.value(v, "--set-secret", True) for v in set_secret or ())
    changes = TaskChanges(
        context=where, file=None if cmd is not None else (file or kinds.DEFAULT_ENCODED_FILE),
        values=task_values or None, values_file=values, cmd=cmd,
        platform=Platform.parse(platform) if platform else None,
        timeout=validate.timeout(timeout) if timeout is not None else None,
        builder=validate.enum_value(BuilderName, builder, "--builder") if builder else None,
        registry=scope.login_server(registry),
        stdin_text=sys.stdin.read() if file == "-" else None,
    )
    _run(changes, RunType.QUICK_RUN, no_logs)

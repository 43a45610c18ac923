"""`acrtask task run | list-runs | show-run | logs | cancel-run`."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from acrtask.run_service import RunService

from acrtask import validate, wiring
from acrtask.cli import options, scope, shapes, tables
from acrtask.cli.options import emit
from acrtask.cli.scope import Registry
from acrtask.cli.task import Args, SecretArgs, SetSecrets, SetValues, task_app
from acrtask.errors import AcrTaskError, NotFoundError, ValidationError
from acrtask.model import Argument, Task
from acrtask.run_record import Run, RunStatus, RunTrigger

RunId = Annotated[str, typer.Option("--run-id", help="The run's ID, e.g. ca3.")]
NoFormat = Annotated[bool, typer.Option("--no-format", help="Print the log as it is (acrtask never colours it; "
                                        "taken for az's sake).")]


def _stderr(message: str) -> None:
    if not options.current.only_show_errors:
        sys.stderr.write(message + "\n")


@task_app.command(epilog="Examples:\n\n  acrtask task run -n hello-world\n\n"
                  "  acrtask task run -n hello-world --arg VERSION=2 --no-logs -o table\n\n"
                  "  acrtask task run -n hello-world -c ./feature -f Dockerfile.dev --target test")
def run(
    name: Annotated[str, typer.Option("--name", "-n", help="The task to run.")],
    registry: Registry = None, arg: Args = None, secret_arg: SecretArgs = None, set_value: SetValues = None,
    set_secret: SetSecrets = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="This run only: another Dockerfile, relative "
                                             "to the context.")] = None,
    context: Annotated[str | None, typer.Option("--context", "-c", help="This run only: another context (a "
                                                "folder or a git URL).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="This run only: another build stage.")] = None,
    no_logs: Annotated[bool, typer.Option("--no-logs", help="Do not stream the build log; print the run.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Queue the run and return at once.")] = False,
    no_format: NoFormat = False,
) -> None:
    """Run a task now: build (or run its steps), push, and record the base images it used."""
    from acrtask.multistep import tasks as multistep_tasks
    from acrtask.task_changes import RunOverrides

    extra = tuple(validate.argument(a, False) for a in arg or ()) + tuple(
        validate.argument(a, True) for a in secret_arg or ())
    values = tuple(multistep_tasks.value(v, "--set", False) for v in set_value or ()) + tuple(
        multistep_tasks.value(v, "--set-secret", True) for v in set_secret or ())
    overrides = RunOverrides(context=context, file=file, target=target)
    service = wiring.program().run_service
    task = overrides.apply(service.task(name, scope.login_server(registry)))
    if values and not task.step.is_multistep:
        raise ValidationError(f"--set and --set-secret are for task files; the task '{name}' builds a Dockerfile.",
                              "Use --arg and --secret-arg for its build arguments.")
    extra += values  # a multi-step run takes them all as values
    queued = service.queue(task, RunTrigger())
    _stderr(f"Queued a run with ID: {queued.run_id}")
    if no_wait:
        service.start_detached(queued, extra, overrides)
        emit(shapes.run(queued), tables.runs)
        return
    execute_and_report(service, queued, task, extra, no_logs)


def execute_and_report(service: RunService, queued: Run, task: Task, extra: tuple[Argument, ...],
                       no_logs: bool) -> None:
    """Run a queued run here, streaming its log (or printing the run), and fail as az does when it fails."""
    cancel = threading.Event()
    # Ctrl-C, SIGTERM or a closed terminal stop the build (its whole process group) and record Canceled.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: cancel.set()) for sig in stops}
    try:
        finished = service.execute(queued, task, _print_line if not no_logs else _ignore, cancel, extra)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if no_logs:
        emit(shapes.run(finished), tables.runs)
    if finished.status is not RunStatus.SUCCEEDED:
        seconds = round(finished.duration_seconds() or 0)
        raise AcrTaskError(f"Run ID: {finished.run_id} {_verb(finished.status)} after {seconds}s. "
                           f"Error: {finished.error}")


def _verb(status: RunStatus) -> str:
    return {RunStatus.TIMEOUT: "timed out", RunStatus.CANCELED: "was canceled"}.get(status, "failed")


def _print_line(line: str) -> None:
    sys.stdout.write(line.rstrip("\n") + "\n")
    sys.stdout.flush()


def _ignore(line: str) -> None:
    return None


@task_app.command("execute-run", hidden=True)
def execute_run(run_id: RunId) -> None:
    """Run a queued run in this process (what `task run --no-wait` starts in the background)."""
    wiring.program().run_service.execute_detached(run_id)


def _runs(registry: str | None) -> list[Run]:
    runs = wiring.program().run_store.find(None, None, None)
    return [r for r in runs if registry is None or (r.registry or "").lower() == registry.lower()]


def _one_run(run_id: str, registry: str | None) -> Run:
    found = wiring.program().run_store.get(run_id)
    if registry is not None and (found.registry or "").lower() != registry.lower():
        raise NotFoundError(f"The run '{run_id}' could not be found in the registry {registry}.",
                            "Run 'acrtask task list-runs' to see the runs there are.")
    return found


def _image_digest(image: str, registry: str | None) -> tuple[str, str, str]:
    """(registry, repository, digest) the -t image points at now, as az resolves it before filtering."""
    from acrtask.reference import ImageRef

    ref = ImageRef.parse(image, default_registry=registry)
    try:
        resolved = wiring.program().registry_client.resolve(ref)
    except AcrTaskError as exc:
        raise NotFoundError(f"Could not find image '{image}'. {exc.message}", exc.hint) from None
    return ref.registry, ref.repository, resolved.digest


@task_app.command("list-runs", epilog="Examples:\n\n  acrtask task list-runs -o table\n\n"
                  "  acrtask task list-runs -n hello-world --run-status Failed --top 5\n\n"
                  "  acrtask task list-runs -r localhost:5000 -t hello:v1")
def list_runs(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this task's runs.")] = None,
    registry: Registry = None,
    run_status: Annotated[str | None, typer.Option(
        "--run-status", help="Only runs in this status: Queued, Started, Running, Succeeded, Failed, Canceled, "
        "Error or Timeout.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", "-t", help="Only runs that pushed what this image (tag or digest; short names under -r) is "
        "now.")] = None,
    top: Annotated[int, typer.Option("--top", help="At most this many runs, newest first.")] = 15,
) -> None:
    """List runs, newest first."""
    status = validate.enum_value(RunStatus, run_status, "--run-status") if run_status else None
    if top < 1:
        raise ValidationError(f"argument --top: {top} is not a positive number.")
    server = scope.login_server(registry)
    runs = [r for r in _runs(server) if (name is None or r.task == name) and (status is None or r.status is status)]
    if image is not None:
        wanted = _image_digest(image, server)
        runs = [r for r in runs if any((o.registry, o.repository, o.digest) == wanted for o in r.output_images)]
    emit([shapes.run(r) for r in runs[:top]], tables.runs)


@task_app.command("show-run", epilog="Examples:\n\n  acrtask task show-run --run-id ca3")
def show_run(run_id: RunId, registry: Registry = None) -> None:
    """Show a run: status, trigger and reason, times, output images."""
    emit(shapes.run(_one_run(run_id, scope.login_server(registry))), tables.runs)


@task_app.command("cancel-run", epilog="Examples:\n\n  acrtask task cancel-run --run-id ca3")
def cancel_run(run_id: RunId, registry: Registry = None) -> None:
    """Cancel a queued or running run."""
    _one_run(run_id, scope.login_server(registry))
    wiring.program().run_service.request_cancel(run_id)


@task_app.command(epilog="Examples:\n\n  acrtask task logs -n hello-world\n\n  acrtask task logs --run-id ca3")
def logs(
    run_id: Annotated[str | None, typer.Option("--run-id", help="The run; the last created run if none.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The last run of this task.")] = None,
    registry: Registry = None,
    image: Annotated[str | None, typer.Option(
        "--image", "-t", help="The last run that pushed what this image is now.")] = None,
    no_format: NoFormat = False,
) -> None:
    """Print a run's log; a run still going is followed to its end, as az streams it."""
    from acrtask import runlogs

    store = wiring.program().run_store
    server = scope.login_server(registry)
    if run_id is None:
        runs = [r for r in _runs(server) if name is None or r.task == name]
        if image is not None:
            wanted = _image_digest(image, server)
            runs = [r for r in runs if any((o.registry, o.repository, o.digest) == wanted for o in r.output_images)]
        if not runs:
            raise NotFoundError("Could not find the last created run.", "Start one with 'acrtask task run -n NAME'.")
        _stderr("Showing logs of the last created run" + (f" for task '{name}'." if name else "."))
        _stderr(f"Run ID: {runs[0].run_id}")
        run_id = runs[0].run_id
    else:
        _one_run(run_id, server)
    found = run_id
    path = store.log_path(found)
    if store.get(found).status.is_terminal and not path.exists():
        raise AcrTaskError(f"Could not get logs for ID: {found}.", "The run ended before it wrote a log.")
    runlogs.follow(path, lambda: store.get(found), _write)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()

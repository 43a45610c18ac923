"""`acrtask task run | list-runs | show-run | logs | cancel-run`."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from acrtask.wiring import RunService

from acrtask import validate
from acrtask.cli import options, tables
from acrtask.cli.options import emit
from acrtask.cli.task import Args, SecretArgs, SetSecrets, SetValues, task_app
from acrtask.errors import AcrTaskError, ValidationError
from acrtask.model import Argument, Run, RunStatus, RunTrigger, Task

RunId = Annotated[str, typer.Option("--run-id", help="The run's ID, e.g. ca3.")]


def _stderr(message: str) -> None:
    if not options.current.only_show_errors:
        sys.stderr.write(message + "\n")


@task_app.command(epilog="Examples:\n\n  acrtask task run -n hello-world\n\n"
                  "  acrtask task run -n hello-world --arg VERSION=2 --no-logs -o table")
def run(
    name: Annotated[str, typer.Option("--name", "-n", help="The task to run.")],
    arg: Args = None, secret_arg: SecretArgs = None, set_value: SetValues = None, set_secret: SetSecrets = None,
    no_logs: Annotated[bool, typer.Option("--no-logs", help="Do not stream the build log; print the run.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Queue the run and return at once.")] = False,
) -> None:
    """Run a task now: build (or run its steps), push, and record the base images it used."""
    from acrtask import wiring
    from acrtask.multistep import tasks as multistep_tasks

    extra = tuple(validate.argument(a, False) for a in arg or ()) + tuple(
        validate.argument(a, True) for a in secret_arg or ())
    values = tuple(multistep_tasks.value(v, "--set", False) for v in set_value or ()) + tuple(
        multistep_tasks.value(v, "--set-secret", True) for v in set_secret or ())
    service = wiring.run_service()
    task = service.task(name)
    if values and not task.step.is_multistep:
        raise ValidationError(f"--set and --set-secret are for task files; the task '{name}' builds a Dockerfile.",
                              "Use --arg and --secret-arg for its build arguments.")
    extra += values  # a multi-step run takes them all as values
    queued = service.queue(task, RunTrigger())
    _stderr(f"Queued a run with ID: {queued.run_id}")
    if no_wait:
        service.start_detached(queued, extra)
        emit(queued.to_dict(), tables.runs)
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
        emit(finished.to_dict(), tables.runs)
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
    from acrtask import wiring

    wiring.run_service().execute_detached(run_id)


@task_app.command("list-runs", epilog="Examples:\n\n  acrtask task list-runs -o table\n\n"
                  "  acrtask task list-runs -n hello-world --run-status Failed --top 5")
def list_runs(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this task's runs.")] = None,
    run_status: Annotated[str | None, typer.Option("--run-status", help="Only runs in this status.")] = None,
    top: Annotated[int, typer.Option("--top", help="At most this many runs, newest first.")] = 15,
) -> None:
    """List runs, newest first."""
    from acrtask import wiring

    status = validate.enum_value(RunStatus, run_status, "--run-status") if run_status else None
    if top < 1:
        raise ValidationError(f"argument --top: {top} is not a positive number.")
    emit([r.to_dict() for r in wiring.run_store().find(name, status, top)], tables.runs)


@task_app.command("show-run", epilog="Examples:\n\n  acrtask task show-run --run-id ca3")
def show_run(run_id: RunId) -> None:
    """Show a run: status, trigger and reason, times, output images."""
    from acrtask import wiring

    emit(wiring.run_store().get(run_id).to_dict(), tables.runs)


@task_app.command("cancel-run", epilog="Examples:\n\n  acrtask task cancel-run --run-id ca3")
def cancel_run(run_id: RunId) -> None:
    """Cancel a queued or running run."""
    from acrtask import wiring

    wiring.run_service().request_cancel(run_id)


@task_app.command(epilog="Examples:\n\n  acrtask task logs -n hello-world\n\n  acrtask task logs --run-id ca3")
def logs(
    run_id: Annotated[str | None, typer.Option("--run-id", help="The run; the last created run if none.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The last run of this task.")] = None,
) -> None:
    """Print a run's log."""
    from acrtask import wiring

    store = wiring.run_store()
    if run_id is None:
        found = store.last(name)
        _stderr("Showing logs of the last created run" + (f" for task '{name}'." if name else "."))
        _stderr(f"Run ID: {found.run_id}")
        run_id = found.run_id
    else:
        store.get(run_id)
    path = store.log_path(run_id)
    try:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AcrTaskError(f"Could not get logs for ID: {run_id}.", "The run has not started yet.") from None

"""`acrtask task timer add|update|remove|list`: a task's cron triggers. Changes print the task, as az's do."""

from __future__ import annotations

from typing import Annotated

import typer

from acrtask import validate
from acrtask.cli import scope, tables
from acrtask.cli.options import GLOBAL_HELP, emit
from acrtask.cli.scope import Registry
from acrtask.cli.task import Name, _service, _shown, task_app

timer_app = typer.Typer(help="Manage a task's timer (cron) triggers.", epilog=GLOBAL_HELP, no_args_is_help=True)
task_app.add_typer(timer_app, name="timer")

TimerName = Annotated[str, typer.Option("--timer-name", help="The timer's name: 1-50 letters, digits, - or _.")]
Enabled = Annotated[str | None, typer.Option("--enabled", help="true|false (bare = true).")]


@timer_app.command("add", epilog="Examples:\n\n"
                   "  acrtask task timer add -n app-build --timer-name nightly --schedule '0 3 * * *'")
def timer_add(
    name: Name, timer_name: TimerName,
    schedule: Annotated[str, typer.Option("--schedule", help="CRON: 5 fields, UTC.")],
    registry: Registry = None, enabled: Enabled = None,
) -> None:
    """Add a timer trigger to a task."""
    flag = True if enabled is None else validate.boolean(enabled, "--enabled")
    task = _service().timer_add(name, timer_name, schedule, flag, scope.login_server(registry))
    emit(_shown(task), tables.tasks)


@timer_app.command("update", epilog="Examples:\n\n"
                   "  acrtask task timer update -n app-build --timer-name nightly --enabled false")
def timer_update(
    name: Name, timer_name: TimerName, registry: Registry = None,
    schedule: Annotated[str | None, typer.Option("--schedule", help="CRON: 5 fields, UTC.")] = None,
    enabled: Enabled = None,
) -> None:
    """Change a timer's schedule or status."""
    flag = None if enabled is None else validate.boolean(enabled, "--enabled")
    task = _service().timer_update(name, timer_name, schedule, flag, scope.login_server(registry))
    emit(_shown(task), tables.tasks)


@timer_app.command("remove", epilog="Examples:\n\n"
                   "  acrtask task timer remove -n app-build --timer-name nightly")
def timer_remove(name: Name, timer_name: TimerName, registry: Registry = None) -> None:
    """Remove a timer trigger."""
    emit(_shown(_service().timer_remove(name, timer_name, scope.login_server(registry))), tables.tasks)


@timer_app.command("list", epilog="Examples:\n\n  acrtask task timer list -n app-build -o table")
def timer_list(name: Name, registry: Registry = None) -> None:
    """List a task's timer triggers."""
    emit([t.to_dict() for t in _service().timer_list(name, scope.login_server(registry))], tables.timers)

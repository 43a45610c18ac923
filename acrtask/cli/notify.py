"""`acrtask notify add|list|remove`: where watch sends run events (triggered, succeeded, failed)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from acrtask.cli.options import GLOBAL_HELP, emit

notify_app = typer.Typer(help="Manage where watch sends run events (a JSON POST, Slack or Teams).",
                         epilog=GLOBAL_HELP, no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The target's name: 1-50 letters, digits, - or _.")]


def _store():  # noqa: ANN202 - a NotifyStore
    from acrtask import wiring

    return wiring.program().notify_store


def _table(result: object) -> list[dict[str, object]]:
    items = result if isinstance(result, list) else [result]
    return [{"NAME": t["name"], "URL": t["url"], "ON": ", ".join(t["on"]), "FORMAT": t["format"]}
            for t in items if isinstance(t, dict)]


@notify_app.command(epilog="Examples:\n\n"
                    "  acrtask notify add team-chat --url https://hooks.slack.com/services/T000/B000/XXXX "
                    "--format slack --on failed\n\n"
                    "  acrtask notify add audit --url https://audit.example.com/acrtask "
                    "--on succeeded,failed,triggered")
def add(
    name: Name,
    url: Annotated[str, typer.Option("--url", help="Where to POST: https, or http to this machine (or to a host "
                                     "in ACRTASK_NOTIFY_INSECURE_HOSTS). Stored privately; shown redacted.")],
    on: Annotated[str, typer.Option("--on", help="Events, comma-separated: succeeded, failed (Failed, Error or "
                                    "Timeout), triggered (a run queued by watch).")] = "succeeded,failed,triggered",
    format: Annotated[str, typer.Option("--format", help="json (the run in az's shape), slack or teams.")] = "json",  # noqa: A002
) -> None:
    """Send run events of watch to a URL."""
    from acrtask import validate
    from acrtask.notify.endpoints import check_url, plain_http_hosts
    from acrtask.notify.targets import Format, NotifyTarget, parse_events, parse_name

    target = NotifyTarget(parse_name(name), check_url(url, "--url", plain_http_hosts(os.environ)), parse_events(on),
                          validate.enum_value(Format, format, "--format"))
    emit(_store().add(target).to_dict(), _table)


@notify_app.command("list", epilog="Examples:\n\n  acrtask notify list -o table")
def list_targets() -> None:
    """List the notification targets (URLs redacted)."""
    emit([target.to_dict() for target in _store().all()], _table)


@notify_app.command(epilog="Examples:\n\n  acrtask notify remove team-chat")
def remove(name: Name) -> None:
    """Remove a notification target."""
    _store().remove(name)

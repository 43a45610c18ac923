"""`acrtask builder add | list | remove | check`: the build endpoints runs are placed on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from acrtask.cli.options import GLOBAL_HELP, emit
from acrtask.errors import AcrTaskError, NotFoundError

builder_app = typer.Typer(
    help="Manage build endpoints: build engines on other machines (podman, Docker, BuildKit) that runs are "
         "placed on. With none, builds run on this machine.",
    epilog=GLOBAL_HELP, no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The endpoint's name: letters, digits, '.', '_' or '-'.")]


def _service():  # noqa: ANN202 - an EndpointService
    from acrtask import wiring

    return wiring.program().endpoint_service


def _endpoint_rows(result: Any) -> list[dict[str, Any]]:
    items = result if isinstance(result, list) else [result]
    return [{"NAME": e.get("name"), "ENGINE": e.get("engine"), "URL": e.get("url"),
             "PLATFORMS": ", ".join(e.get("platforms", [])), "MAX CONCURRENT": e.get("maxConcurrent")}
            for e in items]


def _status_rows(result: Any) -> list[dict[str, Any]]:
    return [{"NAME": s.get("name"), "ENGINE": s.get("engine"), "STATE": s.get("state"),
             "BUSY": f"{s.get('busy')}/{s.get('maxConcurrent')}", "PLATFORMS": ", ".join(s.get("platforms", [])),
             "DETAIL": s.get("detail")} for s in result]


@builder_app.command(epilog="Examples:\n\n"
                     "  acrtask builder add build1 --url tcp://10.0.0.5:8888 --max-concurrent 4\n\n"
                     "  acrtask builder add arm1 --url ssh://core@arm1/run/podman/podman.sock "
                     "--identity ~/.ssh/id_ed25519 --platform linux/arm64\n\n"
                     "  acrtask builder add bk1 --engine buildkit --url tcp://bk1:1234 --tls-dir /etc/acrtask/bk1 "
                     "--platform linux/amd64 --platform linux/arm64")
def add(
    name: Name,
    url: Annotated[str, typer.Option("--url", help="Where the engine listens: tcp://host:port, "
                                     "ssh://user@host:port/path/to/socket or unix:///path/to/socket.")],
    engine: Annotated[str, typer.Option("--engine", help="podman (podman --remote), docker (the Docker API) or "
                                        "buildkit (buildx's remote driver).")] = "podman",
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="Builds it runs at once.")] = 2,
    platform: Annotated[list[str] | None, typer.Option(
        "--platform", help="A platform it builds, os/arch or os/arch/variant. Repeatable. "
        "Default: ask the engine.")] = None,
    identity: Annotated[str | None, typer.Option(
        "--identity", help="podman over ssh://: the private key file.")] = None,
    tls_dir: Annotated[str | None, typer.Option(
        "--tls-dir", help="docker or buildkit over tcp://: a folder with ca.pem, cert.pem and key.pem.")] = None,
) -> None:
    """Add a build endpoint."""
    endpoint = _service().add(name, url, engine, max_concurrent, platform or (), identity, tls_dir)
    emit(endpoint.to_dict(), _endpoint_rows)


@builder_app.command("list", epilog="Examples:\n\n  acrtask builder list -o table")
def list_() -> None:
    """List the build endpoints (without asking them; see `builder check`)."""
    emit([e.to_dict() for e in _service().all()], _endpoint_rows)


@builder_app.command(epilog="Examples:\n\n  acrtask builder remove build1")
def remove(name: Name) -> None:
    """Remove a build endpoint. Runs already on it finish there."""
    _service().remove(name)


@builder_app.command(epilog="Examples:\n\n  acrtask builder check -o table\n\n  acrtask builder check build1")
def check(
    names: Annotated[list[str] | None, typer.Argument(help="Only these endpoints. Default: all.")] = None,
) -> None:
    """Ask each build endpoint whether it answers, and what it builds. Exits 1 if one is down."""
    statuses = _service().check(names or ())
    if not statuses:
        raise NotFoundError("There are no build endpoints to check.",
                              "Add one with 'acrtask builder add NAME --url URL'.")
    emit([s.to_dict() for s in statuses], _status_rows)
    down = [s for s in statuses if s.state != "up"]
    if down:
        listed = "; ".join(f"{s.name}: {s.detail}" for s in down)
        raise AcrTaskError(f"{len(down)} of {len(statuses)} build endpoint(s) did not answer ({listed}).",
                           "Start the engine there, or remove the endpoint with 'acrtask builder remove'.")

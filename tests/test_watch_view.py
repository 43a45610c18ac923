"""The live view of watch, rendered to text."""

from __future__ import annotations

from rich.console import Console

from acrtask.cli.watch_view import LiveView
from acrtask.endpoint_status import EndpointStatus
from acrtask.watch.view import Snapshot


def rendered(snapshot: Snapshot) -> str:
    view = LiveView()
    try:
        view.update(snapshot)
        console = Console(record=True, width=200)
        console.print(view._render())
        return console.export_text()
    finally:
        view.close()


def test_the_live_view_shows_each_build_endpoint_state() -> None:
    endpoints = (
        EndpointStatus("ep1", "podman", "tcp://127.0.0.1:1", ("linux/amd64",), 2, 1, "up", "podman 4.3.1"),
        EndpointStatus("ep2", "podman", "tcp://127.0.0.1:2", ("linux/amd64",), 2, 0, "down", "connection refused",
                       retry_in=9.6),
    )
    text = rendered(Snapshot(endpoints=endpoints, running=(("ca3", "app"),)))
    assert "Build endpoints" in text
    lines = {name: line for line in text.splitlines() for name in ("ep1", "ep2") if f"│ {name} " in line}
    assert "up" in lines["ep1"] and "1/2" in lines["ep1"] and "podman 4.3.1" in lines["ep1"]
    assert "down (retry in 10s)" in lines["ep2"] and "connection refused" in lines["ep2"]


def test_without_endpoints_there_is_no_endpoints_table() -> None:
    assert "Build endpoints" not in rendered(Snapshot())

"""`acrtask task watch`: the foreground loop that rebuilds tasks when their base images move."""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Annotated

import typer

from acrtask.cli.task import task_app
from acrtask.errors import ValidationError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, flag: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValidationError(f"Invalid {flag} '{text}': expected a duration such as 90s, 10m or 1h.")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_interval(text: str) -> tuple[float, float]:
    """`10m-60m` (a random interval in that range, as ACR) or a single fixed value."""
    low, sep, high = text.partition("-")
    lo = parse_duration(low, "--poll-interval")
    hi = parse_duration(high, "--poll-interval") if sep else lo
    if lo <= 0 or hi < lo:
        raise ValidationError(f"Invalid --poll-interval '{text}': the range must be positive and increasing.",
                              "For example --poll-interval 10m-60m or --poll-interval 5m.")
    return lo, hi


@task_app.command(epilog="Examples:\n\n  acrtask task watch\n\n"
                  "  ACRTASK_WEBHOOK_TOKEN=s3cret acrtask task watch --listen 127.0.0.1:8080 --poll-interval 5m-15m\n\n"
                  "  acrtask task watch --once   # check everything now, run what triggers, exit\n\n"
                  "  acrtask task watch --fast-registry registry.example.com --fast-poll-interval 15s")
def watch(
    poll_interval: Annotated[str, typer.Option(
        "--poll-interval", help="How often each base tag is checked: a random interval in MIN-MAX, or a fixed "
        "value.")] = "10m-60m",
    listen: Annotated[str | None, typer.Option(
        "--listen", help="[HOST:]PORT to take registry webhooks on (host 127.0.0.1 unless given), and to serve "
        "GET /metrics, /healthz, /readyz and the status page. Needs ACRTASK_WEBHOOK_TOKEN.")] = None,
    metrics_listen: Annotated[str | None, typer.Option(
        "--metrics-listen", help="[HOST:]PORT to serve GET /metrics, /healthz, /readyz and the status page on, "
        "without webhooks. ACRTASK_STATUS_TOKEN, if set, guards /metrics and the page.")] = None,
    max_concurrent_runs: Annotated[int | None, typer.Option(
        "--max-concurrent-runs", help="Builds at once. Default: the build endpoints' slots added up, or 2 "
        "without endpoints.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Check every base now, run what triggers (and what "
                                       "depends on it), then exit: 1 if a run failed.")] = False,
    commit_poll_interval: Annotated[str, typer.Option(
        "--commit-poll-interval", help="How often git contexts' branch heads are polled.")] = "60s",
    grace_period: Annotated[str, typer.Option(
        "--grace-period", help="On Ctrl-C or SIGTERM, how long running builds may finish before they are "
        "canceled.")] = "30s",
    fast_registry: Annotated[list[str] | None, typer.Option(
        "--fast-registry", help="HOST[:PORT] of a registry of yours to poll every --fast-poll-interval, so a push "
        "there by any tool triggers soon without webhooks. Repeatable; also ACRTASK_FAST_REGISTRIES=h1,h2. "
        "Registries tasks push to are fast anyway; public ones (docker.io, mcr.microsoft.com, ghcr.io, quay.io, "
        "gcr.io) never are.")] = None,
    fast_poll_interval: Annotated[str, typer.Option(
        "--fast-poll-interval", help="How often bases in fast registries are checked.")] = "30s",
) -> None:
    """Watch base images and rebuild the tasks that depend on them when their tags move."""
    from acrtask import wiring
    from acrtask.cli.watch_view import PlainView
    from acrtask.watch.cadence import parse_marks
    from acrtask.watch.options import WatchOptions, parse_listen
    from acrtask.watch.view import WatchView

    low, high = parse_interval(poll_interval)
    if max_concurrent_runs is not None and max_concurrent_runs < 1:
        raise ValidationError(f"Invalid --max-concurrent-runs {max_concurrent_runs}: at least 1.")
    parts = wiring.program()
    pool = parts.build_pool
    if max_concurrent_runs is None:
        max_concurrent_runs = pool.total_slots() or 2
    fast = parse_duration(fast_poll_interval, "--fast-poll-interval")
    if fast <= 0:
        raise ValidationError(f"Invalid --fast-poll-interval '{fast_poll_interval}': it must be positive.")
    options = WatchOptions(
        poll_min=low, poll_max=high, max_concurrent_runs=max_concurrent_runs, once=once,
        commit_poll_interval=parse_duration(commit_poll_interval, "--commit-poll-interval"),
        grace_period=parse_duration(grace_period, "--grace-period"),
        fast_registries=parse_marks(fast_registry or (), os.environ), fast_interval=fast,
    )
    service = parts.watch_service(
        listen=parse_listen(listen) if listen is not None else None,
        metrics_listen=parse_listen(metrics_listen, "--metrics-listen") if metrics_listen is not None else None)

    live = sys.stderr.isatty() and not once
    view: WatchView = PlainView()
    if live:
        from acrtask.cli.watch_view import LiveView

        view = LiveView()
    watcher = parts.watcher(view, options, service)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: watcher.stop())
    endpoints = pool.endpoints()
    if endpoints:
        listed = ", ".join(f"{e.name} ({e.max_concurrent} slots)" for e in endpoints)
        view.event(f"Builds go to build endpoints {listed}; up to {max_concurrent_runs} at once.")
    for line in service.lines:
        view.event(line)
    try:
        code = watcher.run()
    finally:
        service.close(view.event)
        if live:
            view.close()  # type: ignore[attr-defined]
    raise typer.Exit(code)

"""The parts that make `watch` a service, put together: metrics, health, the status page and their
listeners, systemd's notifications, and notifications out. The CLI builds a WatchService, hands its
observers to the Watcher, attaches it, and closes it when the loop ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from acrtask.errors import ValidationError
from acrtask.notify.delivery import Dispatcher
from acrtask.notify.endpoints import plain_http_hosts
from acrtask.notify.notifier import Notifier
from acrtask.notify.store import NotifyStore
from acrtask.reference import is_loopback_host
from acrtask.run_record import Run
from acrtask.watch.board import StatusBoard
from acrtask.watch.health import Health
from acrtask.watch.metrics import EndpointStates, WatchMetrics
from acrtask.watch.observer import Observers, WatchObserver
from acrtask.watch.pages import ServicePages
from acrtask.watch.systemd import SystemdNotifier
from acrtask.watch.webhook import WebhookServer

WEBHOOK_TOKEN_ENV = "ACRTASK_WEBHOOK_TOKEN"
STATUS_TOKEN_ENV = "ACRTASK_STATUS_TOKEN"

Address = tuple[str, int]


class LineRelay:
    """Where notification results are logged: into the loop while it runs, to the view after."""

    def __init__(self, target: Callable[[str], None]) -> None:
        self.target = target

    def __call__(self, line: str) -> None:
        self.target(line)


@dataclass
class WatchService:
    observers: Observers
    relay: LineRelay
    dispatcher: Dispatcher
    metrics: WatchMetrics | None = None
    servers: list[WebhookServer] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what to log once watch starts

    def attach(self, note: Callable[[str], None], on_push: Callable[[list], None]) -> None:
        """Give the listeners and notification workers the watcher's thread-safe inputs, and start serving."""
        self.relay.target = note
        for server in self.servers:
            if server.on_event is not None:
                server.on_event = on_push
            server.start()

    def close(self, log_line: Callable[[str], None]) -> None:
        """After the loop: last notifications get a few seconds, then the listeners close."""
        self.relay.target = log_line
        self.dispatcher.close()
        for server in self.servers:
            server.shutdown()
            server.server_close()


def build(*, listen: Address | None, metrics_listen: Address | None, environ: Mapping[str, str],
          state_probe: Callable[[], object], recent_runs: Callable[[], Sequence[Run]], notify_store: NotifyStore,
          log_line: Callable[[str], None],
          observe_registry: Callable[[Callable[..., None]], None] | None = None,
          endpoints: EndpointStates | None = None) -> WatchService:
    webhook_token = environ.get(WEBHOOK_TOKEN_ENV, "")
    if listen is not None and not webhook_token:
        raise ValidationError("--listen needs a shared token, so that only your registry can trigger builds.",
                              f"Set {WEBHOOK_TOKEN_ENV} and configure the registry to send it.")
    status_token = environ.get(STATUS_TOKEN_ENV, "") or None
    relay = LineRelay(log_line)
    observers: list[WatchObserver] = []
    metrics = None
    servers: list[WebhookServer] = []
    lines: list[str] = []
    if listen is not None or metrics_listen is not None:
        metrics = WatchMetrics(endpoints=endpoints)
        if observe_registry is not None:
            observe_registry(metrics.registry_reply)
        health, board = Health(state_probe), StatusBoard()
        observers += [metrics, health, board]
        if listen is not None:
            pages = ServicePages(metrics, health, board, recent_runs, status_token or webhook_token)
            server = _server(listen, "--listen", webhook_token, pages, metrics, webhook=True)
            servers.append(server)
            lines.append(f"Listening for registry webhooks on http://{server.address}/ (also GET /metrics, "
                         "/healthz, /readyz and the status page).")
        if metrics_listen is not None:
            pages = ServicePages(metrics, health, board, recent_runs, status_token)
            try:
                server = _server(metrics_listen, "--metrics-listen", "", pages, metrics, webhook=False)
            except ValidationError:
                for opened in servers:  # never started: closing the socket is enough
                    opened.server_close()
                raise
            servers.append(server)
            lines.append(f"Serving GET /metrics, /healthz, /readyz and the status page on http://{server.address}/.")
            if status_token is None and not is_loopback_host(metrics_listen[0]):
                lines.append(f"WARNING: {server.address} is not a loopback address and {STATUS_TOKEN_ENV} is not "
                             "set: anyone who can reach it sees the metrics and the status page.")
    if (systemd := SystemdNotifier.from_env(environ)) is not None:
        observers.append(systemd)
    dispatcher = Dispatcher(metrics or _Uncounted(), relay, allowed_http=plain_http_hosts(environ))
    observers.append(Notifier(dispatcher, notify_store, environ, relay))
    return WatchService(Observers(observers), relay, dispatcher, metrics, servers, lines)


def _server(address: Address, flag: str, token: str, pages: ServicePages, metrics: WatchMetrics,
            webhook: bool) -> WebhookServer:
    host, port = address
    try:
        return WebhookServer(host, port, token, (lambda events: None) if webhook else None, pages=pages,
                             on_result=metrics.webhook)
    except OSError as exc:
        raise ValidationError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                              f"Choose another address with {flag}.") from exc


class _Uncounted:
    """Notification results when no metrics are served."""

    def attempted(self, channel: str, result: str) -> None:
        return None

    def settled(self, channel: str, outcome: str) -> None:
        return None

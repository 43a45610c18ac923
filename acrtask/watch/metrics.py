"""Prometheus metrics of watch (prometheus-client), served at GET /metrics.

Labels stay bounded: registries are the ones tasks use (any other host, such as a token service or a blob
store a registry redirects to, counts as `other`), tasks are the configured ones, and results, kinds,
statuses, vendors and channels are small fixed sets. No digests, tags or run ids.

Each watch has a registry of its own (not prometheus-client's global one), so tests and the scale bench can
make many. Counters are fed by the loop (as an observer), by the registry client's reply hook (any thread),
by the webhook listener and by the notification workers; prometheus-client's metrics are thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from acrtask import triggers
from acrtask.errors import ManifestNotFoundError, RegistryError
from acrtask.model import Task
from acrtask.reference import DOCKER_HUB, DOCKER_HUB_API_HOST
from acrtask.run_record import Run, RunStatus
from acrtask.triggers import BaseKey, Interest
from acrtask.watch import cadence
from acrtask.watch.checks import CheckResult
from acrtask.watch.observer import Observer, WatchState

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

EndpointStates = Callable[[], Iterable[tuple[str, bool]]]  # (build endpoint name, up)


def check_result(value: str | Exception | None, moved: bool) -> str:
    """A base check's result label: unchanged | changed | not_found | rate_limited | error."""
    if isinstance(value, str):
        return "changed" if moved else "unchanged"
    if isinstance(value, ManifestNotFoundError):
        return "not_found"
    if isinstance(value, RegistryError) and (value.status == 429 or value.code == "TOOMANYREQUESTS"):
        return "rate_limited"
    return "error"


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class WatchMetrics(Observer):
    def __init__(self, clock: Callable[[], float] = time.time, endpoints: EndpointStates | None = None) -> None:
        self.clock = clock
        self.started = clock()
        self.endpoints = endpoints
        self.registry = CollectorRegistry()
        r = self.registry
        self.checks = Counter("acrtask_base_checks", "Base tag checks, by registry and result (unchanged, "
                              "changed, not_found, rate_limited, error).", ["registry", "result"], registry=r)
        self.requests = Counter("acrtask_registry_requests", "HTTP requests to registries, by registry, method and "
                                "status class.", ["registry", "method", "code"], registry=r)
        self.latency = Histogram("acrtask_registry_request_duration_seconds", "Time from sending a registry request "
                                 "to its answer.", ["registry"], buckets=REQUEST_BUCKETS, registry=r)
        self.triggers = Counter("acrtask_triggers", "Runs queued by a trigger, by kind.", ["kind"], registry=r)
        self.runs = Counter("acrtask_runs", "Runs of this watch that ended, by task and status.", ["task", "status"],
                            registry=r)
        self.run_duration = Histogram("acrtask_run_duration_seconds", "How long runs took, by status.", ["status"],
                                      buckets=RUN_BUCKETS, registry=r)
        self.failures_in_a_row = Gauge("acrtask_task_consecutive_failures", "Runs of a task that did not succeed "
                                       "since its last success (as this watch saw them).", ["task"], registry=r)
        self.queued_runs = Gauge("acrtask_queued_runs", "Runs waiting to start.", registry=r)
        self.running_builds = Gauge("acrtask_running_builds", "Runs building now.", registry=r)
        self.watched = Gauge("acrtask_watched_base_tags", "Base image tags watched.", registry=r)
        self.tasks = Gauge("acrtask_tasks", "Tasks in the state.", registry=r)
        self.webhooks = Counter("acrtask_webhook_deliveries", "Registry webhook requests, by vendor and result.",
                                ["vendor", "result"], registry=r)
        self.notify_attempts = Counter("acrtask_notification_attempts", "Tries to send a notification, by channel "
                                       "(update-trigger, notify) and result.", ["channel", "result"], registry=r)
        self.notifications = Counter("acrtask_notifications", "Notifications by channel and how they ended "
                                     "(delivered, failed, dropped, refused).", ["channel", "outcome"], registry=r)
        self.last_success: dict[str, float] = {}  # registry -> when a check there last got an answer
        self.known: frozenset[str] = frozenset()  # the registries tasks use: request labels
        self._registries: frozenset[str] = frozenset()  # the registries of watched bases
        self._seen_plan: tuple[int, int, int] | None = None
        r.register(_Computed(self))
        ProcessCollector(registry=r)  # process_open_fds, process_resident_memory_bytes, ...

    # The loop's observer.

    def ticked(self, watcher: WatchState, now: float) -> None:
        self.queued_runs.set(len(watcher.queued))
        self.running_builds.set(len(watcher.running))
        seen = (id(watcher.plan), len(watcher.plan.interests), len(watcher.tasks))
        if seen != self._seen_plan:  # a reload: the tasks and their registries may have changed
            self._seen_plan = seen
            self._learn(watcher.tasks.values(), watcher.plan.interests)

    def _learn(self, tasks: Iterable[Task], interests: Mapping[BaseKey, object]) -> None:
        task_list = list(tasks)
        self.tasks.set(len(task_list))
        self.watched.set(len(interests))
        self._registries = frozenset(key.registry for key in interests)
        self.known = self._registries | cadence.pushed_registries(task_list)

    def checked(self, result: CheckResult, interests: Mapping[BaseKey, Sequence[Interest]]) -> None:
        answered = False
        for key in result.upstreams:
            value = result.digests.get(key)
            moved = isinstance(value, str) and bool(triggers.changed(interests.get(key, ()), value))
            label = check_result(value, moved)
            self.checks.labels(result.registry, label).inc()
            answered = answered or label in ("unchanged", "changed", "not_found")
        if answered:  # the registry answered (a 404 is an answer about the tag, not an outage)
            self.last_success[result.registry] = self.clock()

    def queued(self, task: Task, run: Run) -> None:
        self.triggers.labels(str(run.trigger.kind)).inc()

    def finished(self, run: Run) -> None:
        self.runs.labels(run.task, str(run.status)).inc()
        if (seconds := run.duration_seconds()) is not None:
            self.run_duration.labels(str(run.status)).observe(seconds)
        if run.status is RunStatus.SUCCEEDED:
            self.failures_in_a_row.labels(run.task).set(0)
        elif run.status is not RunStatus.CANCELED:
            self.failures_in_a_row.labels(run.task).inc()

    # Other threads.

    def registry_reply(self, method: str, url: httpx.URL, status: int | None, seconds: float) -> None:
        """The registry client's hook: one request and its answer (status None: no answer)."""
        host = url.netloc.decode("ascii")  # host[:port] as registries are spelt ([::1]:5000 keeps its brackets)
        registry = DOCKER_HUB if host == DOCKER_HUB_API_HOST else host
        label = registry if registry in self.known else OTHER
        self.requests.labels(label, method, status_class(status)).inc()
        self.latency.labels(label).observe(seconds)

    def webhook(self, vendor: str, result: str) -> None:
        self.webhooks.labels(vendor, result).inc()

    def attempted(self, channel: str, result: str) -> None:
        self.notify_attempts.labels(channel, result).inc()

    def settled(self, channel: str, outcome: str) -> None:
        self.notifications.labels(channel, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Computed:
    """Values worked out at scrape time: time since each watched registry's last successful check (since
    watch started, for one not yet checked), and the build endpoints' state."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # computed per scrape: no fixed description

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        now = m.clock()
        last = GaugeMetricFamily("acrtask_last_successful_check_timestamp_seconds",
                                 "When a check of a registry's tags last got an answer (Unix time).",
                                 labels=["registry"])
        since = GaugeMetricFamily("acrtask_seconds_since_last_successful_check", "Seconds since a check of a "
                                  "registry's tags last got an answer (since watch started if none has).",
                                  labels=["registry"])
        for registry in sorted(m._registries):  # a registry no task uses any more is not alerted on
            if registry in m.last_success:
                last.add_metric([registry], m.last_success[registry])
            since.add_metric([registry], max(0.0, now - m.last_success.get(registry, m.started)))
        yield last
        yield since
        if m.endpoints is not None:
            up = GaugeMetricFamily("acrtask_build_endpoint_up", "Whether a build endpoint takes builds (1) or "
                                   "not (0).", labels=["endpoint"])
            for name, state in m.endpoints():
                up.add_metric([name], 1.0 if state else 0.0)
            yield up

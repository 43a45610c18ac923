"""The service parts of watch without a build: metrics (parsed with prometheus-client's own parser),
health and readiness, systemd's notify datagrams on a real socket, the pages' access rules and escaping,
and the graph drawn as SVG."""

from __future__ import annotations

import base64
import socket
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acrtask import graph as graphs
from acrtask.errors import ManifestNotFoundError, RegistryError, StateError
from acrtask.graph_svg import MAX_NODES, layout, to_svg
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from acrtask.watch.board import Picture, StatusBoard
from acrtask.watch.checks import CheckResult
from acrtask.watch.health import Health
from acrtask.watch.metrics import WatchMetrics, check_result
from acrtask.watch.observer import Observers
from acrtask.watch.pages import COOKIE, ServicePages, session_value
from acrtask.watch.systemd import SystemdNotifier
from acrtask.watch.view import BaseStatus, Snapshot
from tests.support.tasks import NEW, OLD, dep, task
from tests.support.watch_fakes import KEY, ScriptedRegistry, make


def samples(metrics: WatchMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, as prometheus-client's parser reads it."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: WatchMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize(("result", "moved", "label"), [
    (NEW, False, "unchanged"),
    (NEW, True, "changed"),
    (ManifestNotFoundError("no such tag"), False, "not_found"),
    (RegistryError("slow down", status=429), False, "rate_limited"),
    (RegistryError("slow down", code="TOOMANYREQUESTS"), False, "rate_limited"),
    (RegistryError("bad gateway", status=502), False, "error"),
    (OSError("no descriptors"), False, "error"),
])
def test_check_results_are_labelled(result: object, moved: bool, label: str) -> None:
    assert check_result(result, moved) == label  # type: ignore[arg-type]


def test_a_driven_cycle_is_counted(tmp_path: Path) -> None:
    """Two tasks on one base that moved: one check, two triggers, two runs Succeeded; parsed back."""
    tasks = [task("app-one", [dep("reg.local:5000/base:1")], ("reg.local:5000/app-one:1",)),
             task("app-two", [dep("reg.local:5000/base:1")])]
    metrics = WatchMetrics()
    watcher, _, _ = make(tmp_path, tasks, ScriptedRegistry(NEW), observer=Observers([metrics]))
    record = watcher.runs
    started = record.save  # the runs start (so they have a duration) as a real run's record does

    def timed_save(run: Run) -> Run:
        return started(replace(run, start_time=run.start_time or record.now()))

    record.save = timed_save  # type: ignore[method-assign]
    assert watcher.run() == 0
    assert value(metrics, "acrtask_base_checks_total", registry="reg.local:5000", result="changed") == 1
    assert value(metrics, "acrtask_triggers_total", kind="BaseImageUpdate") == 2
    for name in ("app-one", "app-two"):
        assert value(metrics, "acrtask_runs_total", task=name, status="Succeeded") == 1
        assert value(metrics, "acrtask_task_consecutive_failures", task=name) == 0
    assert value(metrics, "acrtask_run_duration_seconds_count", status="Succeeded") == 2
    assert value(metrics, "acrtask_watched_base_tags") == 1 and value(metrics, "acrtask_tasks") == 2
    assert value(metrics, "acrtask_seconds_since_last_successful_check", registry="reg.local:5000") is not None
    # Requests: a registry tasks use keeps its name; any other host is "other" (labels stay bounded).
    metrics.registry_reply("HEAD", httpx.URL("http://reg.local:5000/v2/base/manifests/1"), 200, 0.02)
    metrics.registry_reply("GET", httpx.URL("https://auth.example.com/token?scope=x"), None, 1.5)
    assert value(metrics, "acrtask_registry_requests_total", registry="reg.local:5000", method="HEAD", code="2xx") == 1
    assert value(metrics, "acrtask_registry_requests_total", registry="other", method="GET", code="error") == 1
    assert value(metrics, "acrtask_registry_request_duration_seconds_count", registry="other") == 1


def test_requests_are_labelled_by_the_registries_tasks_push_to(tmp_path: Path) -> None:
    """A short -t name is under the task's registry (as cadence counts it), so `team/app` is not registry
    "team": a copy of that rule here counted the first path component as a registry."""
    pushing = replace(task("app", [dep("reg.local:5000/base:1")], ("team/app:1",)), registry="push.local:5000")
    metrics = WatchMetrics()
    watcher, _, _ = make(tmp_path, [pushing], ScriptedRegistry(OLD), observer=Observers([metrics]))
    assert watcher.run() == 0
    metrics.registry_reply("PUT", httpx.URL("http://push.local:5000/v2/team/app/manifests/1"), 201, 0.1)
    metrics.registry_reply("GET", httpx.URL("http://team/v2/"), 200, 0.1)
    assert value(metrics, "acrtask_registry_requests_total", registry="push.local:5000", method="PUT",
                 code="2xx") == 1
    assert value(metrics, "acrtask_registry_requests_total", registry="other", method="GET", code="2xx") == 1
    assert value(metrics, "acrtask_registry_requests_total", registry="team", method="GET", code="2xx") is None


def test_an_ipv6_registry_is_labelled_as_registries_are_spelt(tmp_path: Path) -> None:
    metrics = WatchMetrics()
    watcher, _, _ = make(tmp_path, [task("app", [dep("[::1]:5000/base:1")])], ScriptedRegistry(OLD),
                         observer=Observers([metrics]))
    assert watcher.run() == 0
    metrics.registry_reply("HEAD", httpx.URL("http://[::1]:5000/v2/base/manifests/1"), 200, 0.1)
    assert value(metrics, "acrtask_registry_requests_total", registry="[::1]:5000", method="HEAD", code="2xx") == 1


def test_failures_in_a_row_and_endpoint_states() -> None:
    metrics = WatchMetrics(endpoints=lambda: [("builder-a", True), ("builder-b", False)])
    failed = Run("ca1", "app-task", RunStatus.FAILED, RunTrigger(), "2026-01-05T03:40:02Z")
    metrics.finished(failed)
    metrics.finished(replace(failed, status=RunStatus.ERROR))
    assert value(metrics, "acrtask_task_consecutive_failures", task="app-task") == 2
    metrics.finished(replace(failed, status=RunStatus.CANCELED))  # a cancel is not a failure, nor a success
    assert value(metrics, "acrtask_task_consecutive_failures", task="app-task") == 2
    metrics.finished(replace(failed, status=RunStatus.SUCCEEDED))
    assert value(metrics, "acrtask_task_consecutive_failures", task="app-task") == 0
    assert value(metrics, "acrtask_build_endpoint_up", endpoint="builder-b") == 0


def test_a_check_that_only_failed_is_not_a_success() -> None:
    clock = [1000.0]
    metrics = WatchMetrics(clock=lambda: clock[0])
    failed = CheckResult("reg.local:5000", {KEY: None}, {KEY: RegistryError("down", status=503)}, {})
    metrics.checked(failed, {})
    assert "reg.local:5000" not in metrics.last_success
    clock[0] = 1010.0
    metrics.checked(replace(failed, digests={KEY: ManifestNotFoundError("gone")}), {})  # an answer about the tag
    assert metrics.last_success["reg.local:5000"] == 1010.0


# Health.

class FakeWatcher:
    def __init__(self, watched: int = 1) -> None:
        self.plan = type("Plan", (), {"interests": dict.fromkeys(range(watched)), "cycles": []})()
        self.tasks: dict[str, object] = {}
        self.running: dict[str, object] = {}
        self.queued: dict[str, object] = {}

    def snapshot(self) -> Snapshot:
        return Snapshot()


def test_readiness_needs_a_tick_a_readable_state_and_a_check() -> None:
    clock = [0.0]
    broken: list[Exception] = []

    def probe() -> None:
        if broken:
            raise broken[0]

    health = Health(probe, max_tick_gap=30, clock=lambda: clock[0])
    assert health.liveness().ok and not health.readiness().ok  # starting
    health.ticked(FakeWatcher(), 0)  # type: ignore[arg-type]
    assert health.readiness().reasons == ("no registry check has come back yet",)
    health.checked(CheckResult("r", {}, {}, {}), {})
    assert health.readiness().ok
    broken.append(StateError("State file /x/state.db is not a SQLite database."))
    clock[0] = 2.0  # the probe's answer is kept a second
    verdict = health.readiness()
    assert not verdict.ok and verdict.reasons[0].startswith("the state cannot be read: State file /x/state.db")
    broken.clear()
    clock[0] = 4.0
    assert health.readiness().ok
    clock[0] = 40.0  # the loop stopped ticking
    assert not health.liveness().ok and not health.readiness().ok
    assert "has not ticked for 40s" in health.liveness().text("alive")
    health.stopping()
    assert health.liveness().ok and health.readiness().reasons == ("watch is stopping",)


# systemd's notify socket.

def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(str(path))
        sink.settimeout(5)
        clock = [100.0]
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        assert notifier is not None and notifier.watchdog_every == 2.0
        notifier.clock = lambda: clock[0]
        watcher = FakeWatcher(watched=3)
        notifier.ticked(watcher, 0)  # type: ignore[arg-type]
        first = sink.recv(4096).decode().splitlines()
        assert first[0] == "READY=1" and first[1].startswith("STATUS=Watching 3 base tag(s)")
        assert sink.recv(4096) == b"WATCHDOG=1\n"
        clock[0] += 1.0
        notifier.ticked(watcher, 0)  # type: ignore[arg-type]  # under half the watchdog interval: nothing
        clock[0] += 1.5
        notifier.ticked(watcher, 0)  # type: ignore[arg-type]
        assert sink.recv(4096) == b"WATCHDOG=1\n"
        notifier.stopping()
        assert sink.recv(4096).startswith(b"STOPPING=1\n")


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": "relative/path"}])
def test_no_notify_socket_no_notifier(environ: dict[str, str]) -> None:
    assert SystemdNotifier.from_env(environ) is None


def test_an_abstract_socket_and_a_watchdog_for_another_pid() -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@acrtask-test", "WATCHDOG_USEC": "1000000",
                                         "WATCHDOG_PID": "1"})
    assert notifier is not None and notifier.address == b"\0acrtask-test" and notifier.watchdog_every is None
    assert notifier.send("READY=1") is False  # nobody listens: told, not raised


# The pages.

EVIL = '<script>alert("x")</script>'


def _pages(token: str | None = "s3cret-token") -> ServicePages:
    board = StatusBoard(wait=0.01)
    evil_task = replace(task("app-task", [dep("reg.local:5000/base:1")], ("reg.local:5000/app:1",)), name="app-task")
    snapshot = Snapshot(bases=(BaseStatus("reg.local:5000/base:1", ("app-task",), 1000.0, 2000.0, NEW, EVIL),),
                        running=(("ca9", "app-task"),), last_trigger=f"app-task: {EVIL}")
    board.latest = Picture(1000.0, snapshot, (evil_task,))
    run = Run("ca8", "app-task", RunStatus.FAILED, RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE,
              base_image=ImageRef.parse("reg.local:5000/base:1"), old_digest=OLD, new_digest=NEW),
              "2026-01-05T03:40:02Z", error=EVIL)
    health = Health(lambda: None)
    return ServicePages(WatchMetrics(), health, board, lambda: [run], token, clock=lambda: 1001.0)


def test_health_endpoints_are_open_and_the_rest_needs_the_token() -> None:
    pages = _pages()
    assert pages.get("/healthz", "", {}).status == 200
    assert pages.get("/readyz", "", {}).status == 503  # the loop never ticked
    challenge = pages.get("/metrics", "", {})
    assert challenge.status == 401 and dict(challenge.headers)["WWW-Authenticate"].startswith("Basic")
    for headers, query in [({"Authorization": "Bearer nope"}, ""), ({}, "token=nope"),
                           ({"Authorization": "Basic " + base64.b64encode(b"me:nope").decode()}, ""),
                           ({"Cookie": f"{COOKIE}=deadbeef"}, "")]:
        wrong = pages.get("/", query, headers)
        assert wrong.status == 401 and b"s3cret" not in wrong.body and "WWW-Authenticate" not in dict(wrong.headers)
    basic = "Basic " + base64.b64encode(b"anyone:s3cret-token").decode()
    assert pages.get("/metrics", "", {"Authorization": basic}).status == 200
    assert pages.get("/metrics", "", {"Authorization": "Bearer s3cret-token"}).body.startswith(b"# HELP")
    assert pages.get("/nowhere", "", {}).status == 404


def test_a_token_in_the_address_becomes_a_cookie_that_is_not_the_token() -> None:
    pages = _pages()
    first = pages.get("/", "token=s3cret-token", {"Accept": "text/html"})
    headers = dict(first.headers)
    assert first.status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
    again = pages.get("/", "", {"Accept": "text/html", "Cookie": cookie.split(";")[0]})
    assert again.status == 200 and again.content_type.startswith("text/html")
    assert session_value("s3cret-token") in cookie


def test_the_page_escapes_everything_and_forbids_scripts() -> None:
    page = _pages(token=None).get("/", "", {"Accept": "text/html,application/xhtml+xml"})
    body = page.body.decode()
    assert page.status == 200 and "<script" not in body
    assert body.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 3  # base error, last trigger, run error
    for text in ("app-task", "reg.local:5000/base:1", "ca8", f"{OLD[7:19]} -&gt; {NEW[7:19]}", "<svg"):
        assert text in body
    policy = dict(page.headers)["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "'unsafe-inline'" not in policy
    as_json = _pages(token=None).get("/", "", {"Accept": "application/json"})
    assert as_json.content_type == "application/json" and b'"runId": "ca8"' in as_json.body


def test_the_board_builds_a_picture_on_the_loops_thread_when_asked() -> None:
    board = StatusBoard(wait=5.0)
    watcher = FakeWatcher()
    board.ticked(watcher, 1.0)  # type: ignore[arg-type]  # the first picture
    first = board.latest
    board.ticked(watcher, 2.0)  # type: ignore[arg-type]  # nobody asked: nothing built
    assert board.latest is first
    got: list[Picture | None] = []
    asker = threading.Thread(target=lambda: got.append(board.picture()))
    asker.start()
    for _ in range(200):
        board.ticked(watcher, 3.0)  # type: ignore[arg-type]
        if got:
            break
        threading.Event().wait(0.01)
    asker.join(5)
    assert got and got[0] is not None and got[0].at == 3.0


# The graph as SVG.

def test_a_chain_is_laid_out_left_to_right_and_escaped() -> None:
    tasks = [task("base-task", [dep("up.io/os:1")], ("reg.local:5000/node:1",)),
             task("app-<b>", [dep("reg.local:5000/node:1")])]
    built = graphs.build(tasks)
    place = layout(built)
    columns = {name: col for (_, name), (col, _) in place.items()}
    assert columns["up.io/os:1"] < columns["base-task"] < columns["reg.local:5000/node:1"] < columns["app-<b>"]
    svg = to_svg(built)
    assert svg is not None and "app-&lt;b&gt;" in svg and "app-<b>" not in svg


def test_a_cycle_is_drawn_and_a_huge_graph_is_not() -> None:
    cycle = [task("one-task", [dep("r.io/two:1")], ("r.io/one:1",)),
             task("two-task", [dep("r.io/one:1")], ("r.io/two:1",))]
    assert to_svg(graphs.build(cycle)) is not None
    many = [task(f"task-{i:04d}", [dep(f"r.io/base{i}:1")]) for i in range(MAX_NODES)]
    assert to_svg(graphs.build(many)) is None


# The listener: GET pages beside the webhooks, and webhook results counted.

def test_the_listener_serves_pages_and_counts_webhook_results() -> None:
    from acrtask.watch.webhook import WebhookServer

    metrics = WatchMetrics()
    pages = ServicePages(metrics, Health(lambda: None), StatusBoard(wait=0.01), lambda: [], "hook-token")
    received: list[object] = []
    server = WebhookServer("127.0.0.1", 0, "hook-token", received.append, pages=pages, on_result=metrics.webhook)
    open_pages = ServicePages(metrics, Health(lambda: None), StatusBoard(wait=0.01), lambda: [], None)
    quiet = WebhookServer("127.0.0.1", 0, "", None, pages=open_pages, on_result=metrics.webhook)  # --metrics-listen
    for each in (server, quiet):
        each.start()
    try:
        url, quiet_url = f"http://{server.address}", f"http://{quiet.address}"
        push = {"events": [{"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                         "repository": "base", "tag": "1"},
                            "request": {"host": "reg.local:5000"}}]}
        auth = {"Authorization": "Bearer hook-token"}
        assert httpx.post(url + "/", json=push, headers=auth).status_code == 202
        assert httpx.post(url + "/", json=push, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.post(url + "/", content=b"{}", headers=auth).status_code == 400
        assert httpx.post(quiet_url + "/", json=push).status_code == 404  # no webhooks there
        assert httpx.get(url + "/healthz").status_code == 200
        scraped = httpx.get(url + "/metrics", headers=auth)
        assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain; version=")
        assert httpx.get(quiet_url + "/metrics").status_code == 200  # no token set there
    finally:
        for each in (server, quiet):
            each.shutdown()
            each.server_close()
    assert len(received) == 1
    assert value(metrics, "acrtask_webhook_deliveries_total", vendor="distribution", result="accepted") == 1
    assert value(metrics, "acrtask_webhook_deliveries_total", vendor="unknown", result="unauthorized") == 1
    assert value(metrics, "acrtask_webhook_deliveries_total", vendor="unknown", result="bad_payload") == 1
    assert value(metrics, "acrtask_webhook_deliveries_total", vendor="unknown", result="not_found") == 1


def test_listen_flags_are_checked_before_watch_starts(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.cli import run_cli

    monkeypatch.delenv("ACRTASK_WEBHOOK_TOKEN", raising=False)
    no_token = run_cli("task", "watch", "--listen", "127.0.0.1:0")
    assert no_token.code == 2 and no_token.err.startswith("ERROR: --listen needs a shared token")
    bad = run_cli("task", "watch", "--metrics-listen", "127.0.0.1:http")
    assert bad.code == 2 and "Invalid --metrics-listen '127.0.0.1:http'" in bad.err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli("task", "watch", "--metrics-listen", f"127.0.0.1:{taken.getsockname()[1]}")
    assert busy.code == 2 and "Choose another address with --metrics-listen" in busy.err


def test_a_get_with_a_body_is_answered_and_the_connection_stays_in_step() -> None:
    from acrtask.watch.webhook import WebhookServer

    pages = ServicePages(WatchMetrics(), Health(lambda: None), None, lambda: [], None)
    server = WebhookServer("127.0.0.1", 0, "", None, pages=pages)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            replies = b""
            while replies.count(b"HTTP/1.1 ") < 2:
                chunk = conn.recv(65536)
                assert chunk, replies
                replies += chunk
        assert replies.startswith(b"HTTP/1.1 400") and b"HTTP/1.1 200" in replies
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 411")
    finally:
        server.shutdown()
        server.server_close()

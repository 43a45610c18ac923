"""`task watch` as a service, end to end: a real registry, real buildah, the real CLI in a subprocess.
Metrics after a real cycle (parsed with prometheus-client's parser), readiness when the state breaks and
heals, the update-trigger POST to a receiver on 127.0.0.1, a receiver that hangs, fails or is down while
the build goes on, and the status page in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.workbench import Workbench
from tests.support.receiver import Receiver
from tests.support.registry import free_port
from tests.support.waiting import wait_for
from tests.support.watch_process import WatchProcess, app_on_base

pytestmark = pytest.mark.integration

TOKEN = "update-trigger-s3cret"
STATUS_TOKEN = "status-page-s3cret"


@pytest.fixture
def bench(registry, tmp_path: Path, buildah_env: dict[str, str]) -> Workbench:
    return Workbench(registry, tmp_path, buildah_env)


def scrape(port: int, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def answers(port: int, path: str) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def rebuilt(bench: Workbench) -> bool:
    runs = bench.runs()
    return len(runs) == 2 and runs[-1]["status"] == "Succeeded"


def watch_with_metrics(bench: Workbench, port: int) -> WatchProcess:
    watch = WatchProcess(bench.popen("task", "watch", "--metrics-listen", f"127.0.0.1:{port}",
                                     "--poll-interval", "1h"))
    wait_for(lambda: answers(port, "/healthz") == 200, 30, "the metrics listener")
    return watch


def test_metrics_after_a_real_cycle_match_what_happened(bench: Workbench) -> None:
    app_on_base(bench)  # one manual run, before watch: not counted by it
    bench.push_base("baseimages/node:1", "v2")
    port = free_port()
    watch = watch_with_metrics(bench, port)
    try:
        wait_for(lambda: rebuilt(bench), 150, "the triggered rebuild")
        wait_for(lambda: total(scrape(port), "acrtask_runs_total") == 1, 30, "the run counted")
        found = scrape(port)
        assert answers(port, "/readyz") == 200
    finally:
        _, err = watch.stop()
    host = bench.host
    assert total(found, "acrtask_base_checks_total") == 1  # one tag, checked once at start
    assert total(found, "acrtask_base_checks_total", registry=host, result="changed") == 1
    assert total(found, "acrtask_triggers_total") == 1
    assert total(found, "acrtask_triggers_total", kind="BaseImageUpdate") == 1
    assert total(found, "acrtask_runs_total", task="app-task", status="Succeeded") == 1
    assert total(found, "acrtask_run_duration_seconds_count", status="Succeeded") == 1
    assert total(found, "acrtask_task_consecutive_failures", task="app-task") == 0
    assert total(found, "acrtask_registry_requests_total", registry=host, method="HEAD") >= 1
    assert total(found, "acrtask_registry_request_duration_seconds_count", registry=host) >= 1
    assert total(found, "acrtask_last_successful_check_timestamp_seconds", registry=host) > 0
    assert total(found, "acrtask_queued_runs") == 0 and total(found, "acrtask_running_builds") == 0
    assert "Traceback" not in err


def test_readyz_goes_unready_when_the_state_is_unreadable_and_ready_again(bench: Workbench) -> None:
    context = bench.context("app", f"FROM {bench.host}/baseimages/node:1\n")
    bench.create("app-task", context, "app:latest")
    state = bench.home / "state.db"
    port = free_port()
    watch = watch_with_metrics(bench, port)
    try:
        wait_for(lambda: answers(port, "/readyz") == 200, 30, "ready")
        # The database is swapped for a file that is not one (watch's own connections keep the real one open),
        # then put back.
        state.rename(bench.home / "state.db.aside")
        state.write_text("this is not a database\n")
        wait_for(lambda: answers(port, "/readyz") == 503, 30, "unready with a broken state")
        reply = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert "the state cannot be read" in reply.text and "is not a SQLite database" in reply.text
        assert answers(port, "/healthz") == 200  # alive all the same: the loop goes on
        (bench.home / "state.db.aside").replace(state)
        wait_for(lambda: answers(port, "/readyz") == 200, 30, "ready again once the state is fixed")
    finally:
        watch.stop()


def test_the_update_trigger_post_reaches_a_local_receiver_with_acr_fields(bench: Workbench) -> None:
    with Receiver() as receiver:
        old = app_on_base(bench, extra=("--update-trigger-endpoint", receiver.url + "/acr-hook",
                                        "--update-trigger-payload-type", "Token", "--update-trigger-token", TOKEN))
        new = bench.push_base("baseimages/node:1", "v2")
        watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h"))
        try:
            got = receiver.wait_for(1, 150)
            wait_for(lambda: rebuilt(bench), 150, "the triggered rebuild")
        finally:
            _, err = watch.stop()
    assert len(got) == 1
    post = got[0]
    run = bench.runs()[-1]
    assert post.path == "/acr-hook" and post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["Content-Type"] == "application/json"
    body = post.body
    assert (body["action"], body["task"], body["runId"], body["runType"]) == ("baseImageUpdate", "app-task",
                                                                              run["runId"], "AutoRun")
    assert body["imageUpdateTrigger"]["images"] == [{"registry": bench.host, "repository": "baseimages/node",
                                                     "tag": "1", "digest": new, "previousDigest": old}]
    assert body["imageUpdateTrigger"]["id"] == body["id"]
    assert f"Sent the update trigger of app-task for run {run['runId']} to {receiver.url}/…: HTTP 200." in err
    assert TOKEN not in err and "acr-hook" not in err
    assert TOKEN not in bench.acrtask("task", "show", "-n", "app-task").out


def test_a_receiver_that_hangs_fails_or_is_down_neither_delays_nor_fails_the_build(bench: Workbench) -> None:
    dead = free_port()  # nothing listens there
    added = bench.acrtask("notify", "add", "down-hook", "--url", f"http://127.0.0.1:{dead}/x", "--on", "succeeded")
    assert added.code == 0, added.err
    port = free_port()
    with Receiver(answers=[500], hold_first=True) as receiver:
        app_on_base(bench, extra=("--update-trigger-endpoint", receiver.url + "/hook"))
        bench.push_base("baseimages/node:1", "v2")
        watch = watch_with_metrics(bench, port)
        try:
            assert receiver.holding.wait(150), "the update-trigger POST never came"
            wait_for(lambda: rebuilt(bench), 150, "the rebuild, while the receiver holds the POST unanswered")
            assert receiver.holding.is_set()  # the build ended without waiting for the receiver
            receiver.release.set()  # the held request now gets 500 (or the sender has given up on it)
            wait_for(lambda: total(scrape(port), "acrtask_notifications_total", channel="update-trigger",
                                   outcome="delivered") == 1, 60, "the update trigger delivered on a later try")
            wait_for(lambda: total(scrape(port), "acrtask_notification_attempts_total", channel="notify",
                                   result="network_error") >= 2, 60, "the down receiver tried again")
            found = scrape(port)
        finally:
            _, err = watch.stop()
    assert len(receiver.requests) >= 2
    assert total(found, "acrtask_notification_attempts_total", channel="update-trigger", result="ok") == 1
    assert total(found, "acrtask_notification_attempts_total", channel="update-trigger") >= 2
    assert total(found, "acrtask_runs_total", task="app-task", status="Succeeded") == 1
    assert bench.runs()[-1]["status"] == "Succeeded"
    assert "trying again in" in err and f"http://127.0.0.1:{dead}/…" in err


def test_the_status_page_in_a_real_browser(bench: Workbench) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    app_on_base(bench)
    bench.push_base("baseimages/node:1", "v2")
    bench.env["ACRTASK_STATUS_TOKEN"] = STATUS_TOKEN
    port = free_port()
    watch = watch_with_metrics(bench, port)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        wait_for(lambda: rebuilt(bench), 150, "the triggered rebuild")
        reason = bench.runs()[-1]["reason"]
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.set_page_load_timeout(30)
            driver.get(f"http://127.0.0.1:{port}/?token={STATUS_TOKEN}")
            assert driver.current_url == f"http://127.0.0.1:{port}/"  # the token left the address bar
            text = driver.find_element(By.TAG_NAME, "body").text
            for expected in ("app-task", f"{bench.host}/baseimages/node:1", reason, "Recent runs", "ready"):
                assert expected in text, expected
            assert STATUS_TOKEN not in driver.page_source
            assert len(driver.find_elements(By.CSS_SELECTOR, "svg.graph g.task")) == 1
            errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            assert errors == []
            driver.delete_all_cookies()
            driver.get(f"http://127.0.0.1:{port}/?token=wrong-token")
            assert "wrong token" in driver.find_element(By.TAG_NAME, "body").text
        finally:
            driver.quit()
        assert httpx.get(f"http://127.0.0.1:{port}/?token=wrong-token", timeout=5).status_code == 401
    finally:
        watch.stop()


def test_watch_tells_systemd_it_is_ready_pings_the_watchdog_and_says_it_stops(bench: Workbench,
                                                                              tmp_path: Path) -> None:
    import socket

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(str(path))
        sink.settimeout(30)
        bench.env.update({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})  # a ping every 0.5 s
        watch = WatchProcess(bench.popen("task", "watch", "--poll-interval", "1h"))
        got: list[str] = []
        try:
            for _ in range(50):  # READY, then a few watchdog pings
                got.extend(sink.recv(4096).decode().splitlines())
                if got.count("WATCHDOG=1") >= 3:
                    break
        finally:
            _, err = watch.stop()
        for _ in range(50):
            got.extend(sink.recv(4096).decode().splitlines())
            if "STOPPING=1" in got:
                break
    assert got[0] == "READY=1" and any(line.startswith("STATUS=Watching 0 base tag(s)") for line in got)
    assert f"MAINPID={watch.pid}" in got
    assert got.count("WATCHDOG=1") >= 3 and "STOPPING=1" in got
    assert "Traceback" not in err

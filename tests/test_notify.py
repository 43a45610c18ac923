"""Notifications out: endpoint rules, the task settings, payload shapes, the targets' store and CLI, and
delivery (retries, backoff, refusals, no token in any line) against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from acrtask.errors import StateError, ValidationError
from acrtask.model import BaseImageTrigger, Task, UpdateTriggerPayloadType
from acrtask.notify import endpoints, payloads
from acrtask.notify.delivery import Delivery, Dispatcher
from acrtask.notify.notifier import Notifier
from acrtask.notify.store import NotifyStore
from acrtask.notify.targets import Format, NotifyTarget, RunEvent, parse_events
from acrtask.reference import ImageRef
from acrtask.run_record import Run, RunStatus, RunTrigger, TriggerKind
from tests.support.cli import run_cli, state_dump, stored_task
from tests.support.receiver import Receiver
from tests.support.tasks import NEW, OLD, dep, task
from tests.support.waiting import wait_for

TOKEN = "tr1gger-s3cret-value"


# Where notifications may go.

@pytest.mark.parametrize(("url", "allowed"), [
    ("https://hooks.example.com/acrtask", True),
    ("http://127.0.0.1:8080/hook", True),
    ("http://localhost/hook", True),
    ("http://[::1]:9/x", True),
    ("http://hooks.example.com/acrtask", False),
    ("http://10.0.0.5/hook", False),
    ("ftp://example.com/x", False),
    ("https://user:pw@example.com/x", False),
    ("https:///nohost", False),
    ("not a url", False),
])
def test_endpoints_must_be_https_unless_loopback(url: str, allowed: bool) -> None:
    if allowed:
        assert endpoints.check_url(url, "--url") == url
    else:
        with pytest.raises(ValidationError) as caught:
            endpoints.check_url(url, "--url")
        assert "pw" not in str(caught.value)


def test_plain_http_to_a_listed_host_is_allowed() -> None:
    listed = endpoints.plain_http_hosts({"ACRTASK_NOTIFY_INSECURE_HOSTS": "hooks.lan, other:8080"})
    assert endpoints.check_url("http://hooks.lan/x", "--url", listed)
    assert endpoints.check_url("http://other:8080/x", "--url", listed)
    with pytest.raises(ValidationError):
        endpoints.check_url("http://other:9090/x", "--url", listed)


def test_an_ipv6_host_is_listed_as_a_registry_is() -> None:
    """`[fd00::1]:8080` (host:port as ACRTASK_INSECURE_REGISTRIES spells it) is listed; a copy of the rule here
    compared `fd00::1:8080`, so only a bare address could be listed. A bare one still covers every port."""
    listed = endpoints.plain_http_hosts({"ACRTASK_NOTIFY_INSECURE_HOSTS": "[FD00::1]:8080, fd00::2"})
    assert endpoints.check_url("http://[fd00::1]:8080/x", "--url", listed)
    assert endpoints.check_url("http://[fd00::2]:9/x", "--url", listed)
    assert endpoints.check_url("http://[fd00::2]/x", "--url", listed)
    with pytest.raises(ValidationError):
        endpoints.check_url("http://[fd00::1]:9090/x", "--url", listed)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/…"),
    ("https://example.com/?code=secret", "https://example.com/…"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
    ("http://[::1]:9/hook", "http://[::1]:9/…"),
])
def test_endpoints_are_shown_without_their_path(url: str, shown: str) -> None:
    assert endpoints.redact(url) == shown


def test_update_trigger_settings_are_checked_together() -> None:
    base = BaseImageTrigger()
    token_type = UpdateTriggerPayloadType.TOKEN
    with pytest.raises(ValidationError, match="needs an --update-trigger-endpoint"):
        endpoints.apply_settings(base, None, token_type, TOKEN)
    with pytest.raises(ValidationError, match="only with --update-trigger-payload-type Token"):
        endpoints.apply_settings(base, "https://h/x", None, TOKEN)
    set_up = endpoints.apply_settings(base, "https://h/x", token_type, TOKEN)
    assert (set_up.update_trigger_endpoint, set_up.update_trigger_token) == ("https://h/x", TOKEN)
    cleared = endpoints.apply_settings(set_up, "", UpdateTriggerPayloadType.DEFAULT, "")
    assert (cleared.update_trigger_endpoint, cleared.update_trigger_token) == (None, None)


def test_the_token_is_stored_but_never_shown() -> None:
    trigger = BaseImageTrigger(update_trigger_endpoint="https://h/x",
                               update_trigger_payload_type=UpdateTriggerPayloadType.TOKEN, update_trigger_token=TOKEN)
    shown = trigger.to_dict()
    assert TOKEN not in json.dumps(shown)
    assert shown["isUpdateTriggerTokenSet"] is True and shown["updateTriggerPayloadType"] == "Token"
    stored = trigger.to_dict(reveal_secrets=True)
    assert BaseImageTrigger.from_dict(stored) == trigger
    assert BaseImageTrigger.from_dict(shown).update_trigger_token is None


def test_task_create_and_update_take_the_update_trigger_flags(home: Path, ctx: Path) -> None:
    made = run_cli("task", "create", "-n", "hooked-task", "-c", str(ctx), "-t", "localhost:5000/app:1",
                   "--update-trigger-endpoint", "http://127.0.0.1:9/hook/abc", "--update-trigger-payload-type",
                   "token", "--update-trigger-token", TOKEN)
    assert made.code == 0, made.err
    shown = run_cli("task", "show", "-n", "hooked-task")
    assert TOKEN not in shown.out
    base = shown.json()["trigger"]["baseImageTrigger"]
    assert base["updateTriggerEndpoint"] == "http://127.0.0.1:9/hook/abc"
    assert base["updateTriggerPayloadType"] == "Token"
    assert stored_task(home, "hooked-task")["trigger"]["baseImageTrigger"]["updateTriggerToken"] == TOKEN  # for watch
    refused = run_cli("task", "update", "-n", "hooked-task", "--update-trigger-endpoint", "http://example.com/x")
    assert refused.code == 2 and refused.err.startswith("ERROR: --update-trigger-endpoint http://example.com/…")
    cleared = run_cli("task", "update", "-n", "hooked-task", "--update-trigger-endpoint", "",
                      "--update-trigger-payload-type", "Default", "--update-trigger-token", "")
    assert cleared.code == 0, cleared.err
    assert "updateTriggerEndpoint" not in cleared.json()["trigger"]["baseImageTrigger"]
    assert TOKEN not in "".join(state_dump(home))


# Payloads.

def _run(status: RunStatus = RunStatus.QUEUED, error: str | None = None) -> Run:
    trigger = RunTrigger(kind=TriggerKind.BASE_IMAGE_UPDATE, base_image=ImageRef.parse("reg.local:5000/base/node:1"),
                         old_digest=OLD, new_digest=NEW)
    return Run("ca7", "app-task", status, trigger, "2026-01-05T03:40:02.000000Z",
               start_time="2026-01-05T03:40:03.000000Z",
               finish_time=None if status is RunStatus.QUEUED else "2026-01-05T03:40:32.000000Z", error=error)


def test_the_update_trigger_body_has_acr_run_fields() -> None:
    body = payloads.update_trigger(_run(), "event-1", "2026-01-05T03:40:02Z")
    assert body["action"] == "baseImageUpdate" and body["id"] == "event-1"
    assert (body["task"], body["runId"], body["runType"], body["status"]) == ("app-task", "ca7", "AutoRun", "Queued")
    trigger = body["imageUpdateTrigger"]
    assert (trigger["id"], trigger["timestamp"]) == ("event-1", "2026-01-05T03:40:02Z")
    assert trigger["images"] == [{"registry": "reg.local:5000", "repository": "base/node", "tag": "1",
                                  "digest": NEW, "previousDigest": OLD}]


def test_run_events_in_each_format() -> None:
    failed = _run(RunStatus.FAILED, error="step 2 <exit 1> & more")
    assert payloads.run_event(failed, queued=False) is RunEvent.FAILED
    assert payloads.run_event(replace(failed, status=RunStatus.CANCELED), queued=False) is None
    slack = payloads.run_notification(failed, RunEvent.FAILED, Format.SLACK, "t")
    assert slack["text"].endswith("step 2 &lt;exit 1&gt; &amp; more") and "failed after 29s" in slack["text"]
    teams = payloads.run_notification(failed, RunEvent.FAILED, Format.TEAMS, "t")
    assert teams["@type"] == "MessageCard" and teams["themeColor"] == "D00000"
    plain = payloads.run_notification(failed, RunEvent.FAILED, Format.JSON, "t")
    assert plain["event"] == "failed" and plain["run"]["runId"] == "ca7" and "pid" not in plain["run"]


# The targets' store and CLI.

def test_targets_are_stored_privately_and_listed_redacted(home: Path) -> None:
    added = run_cli("notify", "add", "team-chat", "--url", "https://hooks.slack.com/services/T0/B0/XXXX",
                    "--format", "Slack", "--on", "failed,succeeded")
    assert added.code == 0, added.err
    assert added.json() == {"name": "team-chat", "url": "https://hooks.slack.com/…", "on": ["succeeded", "failed"],
                            "format": "slack"}
    assert stat.S_IMODE(os.stat(home / "notify.json").st_mode) == 0o600
    assert "XXXX" in (home / "notify.json").read_text()
    listed = run_cli("notify", "list", "-o", "table")
    assert "team-chat" in listed.out and "XXXX" not in listed.out
    assert run_cli("notify", "add", "team-chat", "--url", "https://h/x").code == 2
    assert run_cli("notify", "add", "other", "--url", "https://h/x", "--on", "pushed").code == 2
    assert run_cli("notify", "add", "bad name!", "--url", "https://h/x").code == 2
    assert run_cli("notify", "remove", "nobody").code == 3
    assert run_cli("notify", "remove", "team-chat").code == 0
    assert run_cli("notify", "list").json() == []


def test_a_malformed_targets_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "notify.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match="malformed"):
        NotifyStore(path).all()
    assert path.read_text() == "{not json"
    assert parse_events("FAILED, triggered") == {RunEvent.FAILED, RunEvent.TRIGGERED}


# Delivery, to a real receiver.

class Counted:
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.outcomes: list[tuple[str, str]] = []

    def attempted(self, channel: str, result: str) -> None:
        self.attempts.append((channel, result))

    def settled(self, channel: str, outcome: str) -> None:
        self.outcomes.append((channel, outcome))


def _dispatcher(counted: Counted, lines: list[str], **options: float) -> Dispatcher:
    return Dispatcher(counted, lines.append, first_delay=0.05, timeout=5.0, **options)  # type: ignore[arg-type]


def _wait_settled(counted: Counted, count: int) -> None:
    wait_for(lambda: len(counted.outcomes) >= count, 20, f"{count} notification(s) to settle", interval=0.02)


def test_a_receiver_answering_500_is_retried_until_it_takes_it() -> None:
    counted, lines = Counted(), []
    with Receiver(answers=[500, 503]) as receiver:
        dispatcher = _dispatcher(counted, lines)
        dispatcher.submit(Delivery("update-trigger", "update trigger of app", receiver.url + "/hook/secret-path",
                                   {"runId": "ca1"}, TOKEN))
        _wait_settled(counted, 1)
        dispatcher.close()
    assert [r.body for r in receiver.requests] == [{"runId": "ca1"}] * 3
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in receiver.requests)
    assert counted.attempts == [("update-trigger", "http_error")] * 2 + [("update-trigger", "ok")]
    assert counted.outcomes == [("update-trigger", "delivered")]
    assert any("trying again" in line for line in lines) and "try 3" in lines[-1]
    assert not any(TOKEN in line or "secret-path" in line for line in lines)


def test_a_refusal_is_not_retried_and_a_down_receiver_is_given_up_on() -> None:
    counted, lines = Counted(), []
    with Receiver(answers=[400]) as receiver:
        dispatcher = _dispatcher(counted, lines, attempts=3)
        dispatcher.submit(Delivery("notify", "failed notice", receiver.url + "/", {"a": 1}))
        _wait_settled(counted, 1)
        down = receiver.url  # closed below: nothing listens there any more
    dispatcher.submit(Delivery("notify", "failed notice", down + "/gone", {"a": 2}))
    _wait_settled(counted, 2)
    dispatcher.close()
    assert len(receiver.requests) == 1
    assert sorted(counted.outcomes) == [("notify", "failed"), ("notify", "failed")]
    assert counted.attempts.count(("notify", "network_error")) == 3
    assert any("the receiver refused it; not retried" in line for line in lines)
    assert any("after 3 tries" in line for line in lines)


def test_redirects_are_not_followed_and_plain_http_elsewhere_is_refused() -> None:
    counted, lines = Counted(), []
    with Receiver(answers=[302]) as receiver:
        dispatcher = _dispatcher(counted, lines)
        dispatcher.submit(Delivery("notify", "notice", receiver.url + "/", {}, TOKEN))
        assert not dispatcher.submit(Delivery("notify", "notice", "http://192.0.2.1/x", {}, TOKEN))
        _wait_settled(counted, 2)
        dispatcher.close()
    assert len(receiver.requests) == 1
    assert sorted(counted.outcomes) == [("notify", "failed"), ("notify", "refused")]


def test_a_full_queue_drops_and_a_close_drops_what_waits() -> None:
    counted, lines = Counted(), []
    with Receiver(hold_first=True) as receiver:
        dispatcher = _dispatcher(counted, lines, workers=1, max_queued=1)
        dispatcher.submit(Delivery("notify", "first", receiver.url + "/", {}))
        assert receiver.holding.wait(10)
        assert dispatcher.submit(Delivery("notify", "second", receiver.url + "/", {}))
        assert not dispatcher.submit(Delivery("notify", "third", receiver.url + "/", {}))
        assert ("notify", "dropped") in counted.outcomes
        receiver.release.set()
        dispatcher.close(grace=10)
    assert [o for _, o in counted.outcomes].count("delivered") == 2


# The notifier: what a queued or ended run sends.

def _hooked(url: str, payload_type: UpdateTriggerPayloadType, token: str | None) -> Task:
    plain = task("app-task", [dep("reg.local:5000/base/node:1")])
    base = replace(plain.trigger.base_image, update_trigger_endpoint=url, update_trigger_payload_type=payload_type,
                   update_trigger_token=token)
    return replace(plain, trigger=replace(plain.trigger, base_image=base))


def test_the_notifier_sends_the_update_trigger_and_run_events(tmp_path: Path) -> None:
    counted, lines = Counted(), []
    store = NotifyStore(tmp_path / "notify.json")
    with Receiver() as receiver:
        store.add(NotifyTarget("ops", receiver.url + "/ops", frozenset({RunEvent.FAILED}), Format.JSON))
        dispatcher = _dispatcher(counted, lines)
        notifier = Notifier(dispatcher, store, {"ACRTASK_UPDATE_TRIGGER_TOKEN": "from-env"}, lines.append,
                            new_id=lambda: "event-1", now=lambda: "2026-01-05T03:40:02Z")
        notifier.queued(_hooked(receiver.url + "/acr", UpdateTriggerPayloadType.TOKEN, None), _run())
        notifier.queued(_hooked(receiver.url + "/acr", UpdateTriggerPayloadType.DEFAULT, None),
                        replace(_run(), trigger=RunTrigger(kind=TriggerKind.TIMER, timer_name="t")))  # no POST
        notifier.finished(_run(RunStatus.SUCCEEDED))  # ops wants failures only
        notifier.finished(_run(RunStatus.FAILED, error="boom"))
        _wait_settled(counted, 2)
        dispatcher.close()
    by_path = {r.path: r for r in receiver.requests}
    assert sorted(by_path) == ["/acr", "/ops"]
    assert by_path["/acr"].headers["Authorization"] == "Bearer from-env"
    assert by_path["/acr"].body["imageUpdateTrigger"]["images"][0]["previousDigest"] == OLD
    assert by_path["/ops"].body["event"] == "failed" and "Authorization" not in by_path["/ops"].headers


def test_a_token_payload_without_a_token_is_not_sent(tmp_path: Path) -> None:
    counted, lines = Counted(), []
    dispatcher = _dispatcher(counted, lines)
    notifier = Notifier(dispatcher, None, {}, lines.append)
    notifier.queued(_hooked("http://127.0.0.1:9/x", UpdateTriggerPayloadType.TOKEN, None), _run())
    dispatcher.close()
    assert counted.outcomes == [("update-trigger", "refused")]
    assert "has no token" in lines[0]

"""Webhook payloads from each registry, and the listener's rules (token, size, unknown payloads).

Raw-socket tests of the listener's framing, limits and timeouts are in tests/test_webhook_listener.py."""

from __future__ import annotations

import json
import queue

import httpx
import pytest

from acrtask.errors import ValidationError
from acrtask.triggers import BaseKey
from acrtask.watch.checks import CheckResult
from acrtask.watch.events import CheckTags, PushEvent, PushSeen, Say, TagsChecked, TasksLoaded, Tick
from acrtask.watch.options import WatchOptions, parse_listen
from acrtask.watch.payloads import UnknownPayload, notified_line, parse, watched_pushes
from acrtask.watch.scheduler import Scheduler
from acrtask.watch.webhook import WebhookServer, token_ok
from tests.support.tasks import OLD, dep, task
from tests.support.webhook_payloads import DEEP, DIGEST, WRONG_SHAPES, distribution_event


@pytest.mark.parametrize(("payload", "expected"), [
    ({"events": [distribution_event()]},
     [PushEvent("distribution", "baseimages/node", "1", "127.0.0.1:5000", DIGEST)]),
    ({"events": [distribution_event(media_type="application/octet-stream")]}, []),  # a blob
    ({"events": [distribution_event(tag=None)]}, []),  # a push by digest moves no tag
    ({"events": [distribution_event(action="pull")]}, []),
    ({"id": "cb8c", "action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                                 "digest": DIGEST, "repository": "hello-world", "tag": "v1"},
      "request": {"host": "myregistry.azurecr.io", "method": "PUT"}},
     [PushEvent("acr", "hello-world", "v1", "myregistry.azurecr.io", DIGEST)]),
    ({"action": "ping"}, []),
    ({"push_data": {"pushed_at": 1, "tag": "latest"}, "repository": {"repo_name": "svendowideit/testhook"}},
     [PushEvent("dockerhub", "svendowideit/testhook", "latest", "docker.io")]),
    ({"push_data": {"tag": "3"}, "repository": {"repo_name": "alpine"}},
     [PushEvent("dockerhub", "library/alpine", "3", "docker.io")]),
    ({"type": "PUSH_ARTIFACT", "occur_at": 1, "event_data": {
        "resources": [{"digest": DIGEST, "tag": "latest", "resource_url": "hub.harbor.com/test-webhook/debian:latest"}],
        "repository": {"name": "debian", "namespace": "test-webhook", "repo_full_name": "test-webhook/debian"}}},
     [PushEvent("harbor", "test-webhook/debian", "latest", "hub.harbor.com", DIGEST)]),
    # Harbor without an external URL: the resource URL starts with the project, which is no host.
    ({"type": "PUSH_ARTIFACT", "event_data": {
        "resources": [{"digest": DIGEST, "tag": "1", "resource_url": "mynamespace/repository:1"}],
        "repository": {"name": "repository", "namespace": "mynamespace", "repo_full_name": "mynamespace/repository"}}},
     [PushEvent("harbor", "mynamespace/repository", "1", None, DIGEST)]),
    ({"type": "PUSH_ARTIFACT", "event_data": {
        "resources": [{"tag": "1", "resource_url": "localhost:8443/team/base:1"}],
        "repository": {"repo_full_name": "team/base"}}},
     [PushEvent("harbor", "team/base", "1", "localhost:8443", None)]),
    ({"type": "PULL_ARTIFACT", "event_data": {"resources": [], "repository": {}}}, []),
])
def test_payloads(payload: dict, expected: list[PushEvent]) -> None:
    assert parse(json.dumps(payload).encode()) == expected


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"hello": "world"}'])
def test_unknown_payloads(body: bytes) -> None:
    with pytest.raises(UnknownPayload):
        parse(body)


@pytest.mark.parametrize(("payload", "reason"), WRONG_SHAPES, ids=[r for _, r in WRONG_SHAPES])
def test_wrong_shapes_are_unknown_payloads_with_a_reason(payload: dict, reason: str) -> None:
    with pytest.raises(UnknownPayload) as caught:
        parse(json.dumps(payload).encode())
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("body", DEEP, ids=["list-50k", "open-100k", "object-100k", "events-60k"])
def test_deeply_nested_json_is_an_unknown_payload(body: bytes) -> None:
    with pytest.raises(UnknownPayload, match="nested too deeply"):
        parse(body)


def test_one_line_for_a_body_of_many_events() -> None:
    events = [PushEvent("distribution", f"team/image-{i}", "1") for i in range(1000)]
    watched = [BaseKey("r.io", f"team/image-{i}", "1") for i in (7, 3, 500, 999)] + [BaseKey("r.io", "other", "1")]
    keys = watched_pushes(events, watched)
    assert keys == sorted(watched[:4], key=str)
    assert notified_line(events, keys) == ("Notified by distribution: r.io/team/image-3:1, r.io/team/image-500:1, "
                                           "r.io/team/image-7:1 and 1 more were pushed; checking now.")
    assert notified_line(events[:1], keys[:1]) == ("Notified by distribution: r.io/team/image-3:1 was pushed; "
                                                   "checking now.")


def test_the_watch_logs_one_line_per_body_of_1000_events_and_checks_what_they_name() -> None:
    bases = [f"reg.local:5000/team/image-{i}:1" for i in range(5)]
    scheduler = Scheduler(WatchOptions(poll_min=3600, poll_max=3600))
    tasks = [task(f"app-{i}", [dep(base)]) for i, base in enumerate(bases)]
    list(scheduler.handle(TasksLoaded({t.name: t for t in tasks}), now=0.0))
    (first,) = [d for d in scheduler.handle(Tick(), now=0.0) if isinstance(d, CheckTags)]  # the check at start
    unchanged = CheckResult(first.registry, dict(first.batch), dict.fromkeys(first.batch, OLD), {})
    list(scheduler.handle(TagsChecked(unchanged), now=0.5))
    body = PushSeen(tuple(PushEvent("distribution", f"team/image-{i}", "1") for i in range(1000)))
    assert list(scheduler.handle(body, now=1.0)) == [Say(
        "Notified by distribution: reg.local:5000/team/image-0:1, reg.local:5000/team/image-1:1, "
        "reg.local:5000/team/image-2:1 and 2 more were pushed; checking now.")]
    (check,) = [d for d in scheduler.handle(Tick(), now=1.0) if isinstance(d, CheckTags)]
    assert sorted(map(str, check.batch)) == sorted(bases)


@pytest.mark.parametrize(("authorization", "query", "ok"), [
    ("Bearer s3cret", "", True),
    ("bearer s3cret", "", True),
    (None, "token=s3cret", True),
    ("Bearer wrong", "", False),
    (None, "token=wrong", False),
    (None, "", False),
    ("Basic czNjcmV0", "", False),
])
def test_token(authorization: str | None, query: str, ok: bool) -> None:
    assert token_ok("s3cret", authorization, query) is ok


@pytest.mark.parametrize(("text", "expected"), [
    ("8080", ("127.0.0.1", 8080)), (":8080", ("127.0.0.1", 8080)), ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("[::1]:80", ("::1", 80)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_parse_listen_rejects_garbage() -> None:
    with pytest.raises(ValidationError):
        parse_listen("localhost:http")


@pytest.fixture
def server():
    received: queue.Queue[list[PushEvent]] = queue.Queue()
    srv = WebhookServer("127.0.0.1", 0, "s3cret", received.put)
    srv.start()
    yield srv, received
    srv.shutdown()
    srv.server_close()


def test_listener_accepts_a_good_event(server) -> None:
    srv, received = server
    body = json.dumps({"events": [distribution_event()]})
    response = httpx.post(f"http://{srv.address}/", content=body, headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 202
    assert [event.tag for event in received.get(timeout=5)] == ["1"]


def test_listener_refuses_bad_token_unknown_payload_and_big_bodies(server) -> None:
    srv, received = server
    url = f"http://{srv.address}/"
    good = json.dumps({"events": [distribution_event()]})
    assert httpx.post(url, content=good).status_code == 401
    assert httpx.post(url + "?token=nope", content=good).status_code == 401
    assert httpx.post(url + "?token=s3cret", content=b'{"what": 1}').status_code == 400
    big = b'{"events": [' + b" " * (1024 * 1024 + 1) + b"]}"
    assert httpx.post(url + "?token=s3cret", content=big).status_code == 413
    assert received.empty()
    assert httpx.post(url + "?token=s3cret", content=good).status_code == 202

"""Webhook payloads for the parser's and the listener's tests: a distribution-style push event to vary, and
bodies that must be refused (valid JSON of the wrong shape for each vendor, JSON nested too deeply)."""

from __future__ import annotations

from acrtask.media import OCI_MANIFEST

DIGEST = "sha256:" + "e" * 64


def distribution_event(action: str = "push", tag: str | None = "1", media_type: str = OCI_MANIFEST) -> dict:
    target = {"mediaType": media_type, "digest": DIGEST, "repository": "baseimages/node", "size": 10}
    if tag:
        target["tag"] = tag
    return {"id": "x", "action": action, "target": target, "request": {"host": "127.0.0.1:5000", "method": "PUT"}}


def hub(**fields: object) -> dict:
    return {"push_data": {"tag": "1"}, "repository": {"repo_name": "team/base"}, **fields}


def harbor(**fields: object) -> dict:
    event_data = {"resources": [{"tag": "1", "resource_url": "h.io/team/base:1"}],
                  "repository": {"repo_full_name": "team/base"}}
    return {"type": "PUSH_ARTIFACT", "event_data": event_data, **fields}


def with_target(**fields: object) -> dict:
    event = distribution_event()
    event["target"] = {**event["target"], **fields}
    return event


# Valid JSON of the wrong shape, for each vendor: a one-line reason naming the field, never a crash.
WRONG_SHAPES = [
    ({"events": [{**distribution_event(), "target": "str"}]}, "events[0].target is a string, expected an object"),
    ({"events": [{**distribution_event(), "target": [1]}]}, "events[0].target is a list, expected an object"),
    ({"events": [{**distribution_event(), "request": "x"}]}, "events[0].request is a string, expected an object"),
    ({"events": [with_target(mediaType=7)]}, "events[0].target.mediaType is a number, expected a string"),
    ({"events": [with_target(tag=["1"])]}, "events[0].target.tag is a list, expected a string"),
    ({"events": [with_target(repository={"a": 1})]}, "target.repository is an object, expected a string"),
    ({"events": [1]}, "events[0] is a number, expected an object"),
    ({"events": "x"}, "events is a string, expected a list"),
    ({"events": [{**distribution_event(), "action": True}]}, "events[0].action is a boolean, expected a string"),
    ({**distribution_event(), "target": "str"}, "target is a string, expected an object"),  # ACR, no envelope
    ({**distribution_event(), "request": "x"}, "request is a string, expected an object"),
    ({**distribution_event(), "target": {"mediaType": 1.5}}, "target.mediaType is a number, expected a string"),
    (hub(push_data="x"), "push_data is a string, expected an object"),
    (hub(repository="a/b"), "repository is a string, expected an object"),
    (hub(push_data={"tag": 3}), "push_data.tag is a number, expected a string"),
    (hub(repository={"repo_name": ["a"]}), "repository.repo_name is a list, expected a string"),
    (harbor(event_data="x"), "event_data is a string, expected an object"),
    (harbor(event_data={"resources": "x"}), "event_data.resources is a string, expected a list"),
    (harbor(event_data={"resources": ["x"]}), "event_data.resources[0] is a string, expected an object"),
    (harbor(event_data={"resources": [{"tag": 1}]}), "event_data.resources[0].tag is a number, expected a string"),
    (harbor(event_data={"repository": "a/b"}), "event_data.repository is a string, expected an object"),
    (harbor(type=5), "type is a number, expected a string"),
]


DEEP = [b"[" * 50_000 + b"]" * 50_000, b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"events": ' + b"[" * 60_000 + b"]" * 60_000 + b"}"]

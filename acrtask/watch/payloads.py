"""Registry push notifications, parsed (pure: bytes in, events out).

Payloads are told apart by their content: CNCF distribution's events envelope (v1 and v2 media
types), ACR webhooks, Docker Hub webhooks and Harbor webhooks. An event only says "look at this
tag now": the watch loop confirms it by resolving the tag before anything runs.

Every field that is read is checked for its JSON type first, so valid JSON of the wrong shape is an
`UnknownPayload` with a one-line reason (the listener answers 400), never an exception that drops
the connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from acrtask import media
from acrtask.reference import names_registry
from acrtask.triggers import BaseKey
from acrtask.watch.events import PushEvent

MANIFEST_TYPES = media.PUSHED_TYPES


class UnknownPayload(ValueError):
    pass


def parse(body: bytes) -> list[PushEvent]:
    """Every tag push in a payload; other events (pulls, deletes, blobs) give an empty list."""
    try:
        data = json.loads(body)
    except RecursionError:  # 50,000 nested brackets: the decoder's own limit, not a crash
        raise UnknownPayload("body is JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnknownPayload(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnknownPayload("body is not a JSON object")
    if "events" in data:
        items = _list(data["events"], "events")
        return [e for e in (_distribution(item, f"events[{i}]") for i, item in enumerate(items)) if e]
    if "push_data" in data and "repository" in data:
        return _docker_hub(data)
    if "event_data" in data and "type" in data:
        return _harbor(data)
    if "action" in data and "target" in data:  # ACR: one event, no envelope
        event = _distribution(data, "", source="acr")
        return [event] if event else []
    if data.get("action") == "ping":
        return []
    raise UnknownPayload("not a distribution, ACR, Docker Hub or Harbor payload")


def _distribution(item: Any, where: str, source: str = "distribution") -> PushEvent | None:
    if not isinstance(item, dict):
        raise UnknownPayload(f"{where} is {_kind(item)}, expected an object")
    action = _text(item.get("action"), _at(where, "action"))
    target = _object(item.get("target"), _at(where, "target"))
    request = _object(item.get("request"), _at(where, "request"))
    tag = _text(target.get("tag"), _at(where, "target.tag"))
    repository = _text(target.get("repository"), _at(where, "target.repository"))
    media_type = _text(target.get("mediaType"), _at(where, "target.mediaType")).split(";")[0]
    digest = _text(target.get("digest"), _at(where, "target.digest"))
    host = _text(request.get("host"), _at(where, "request.host"))
    if action != "push" or not tag or not repository or (media_type and media_type not in MANIFEST_TYPES):
        return None  # pulls, deletes, blob pushes and pushes by digest move no tag
    return PushEvent(source, repository, tag, host or None, digest or None)


def _docker_hub(data: dict[str, Any]) -> list[PushEvent]:
    repo = _object(data["repository"], "repository")
    tag = _text(_object(data["push_data"], "push_data").get("tag"), "push_data.tag")
    name = _text(repo.get("repo_name"), "repository.repo_name")
    if not tag or not name:
        raise UnknownPayload("Docker Hub payload without repository.repo_name or push_data.tag")
    if "/" not in name:
        name = f"library/{name}"
    return [PushEvent("dockerhub", name, tag, "docker.io")]


def _harbor(data: dict[str, Any]) -> list[PushEvent]:
    kind = _text(data["type"], "type")
    event_data = _object(data["event_data"], "event_data")
    repository = _object(event_data.get("repository"), "event_data.repository")
    repo = _text(repository.get("repo_full_name"), "event_data.repository.repo_full_name")
    resources = _list(event_data.get("resources"), "event_data.resources")
    if kind not in ("PUSH_ARTIFACT", "pushImage"):
        return []
    events = []
    for i, item in enumerate(resources):
        where = f"event_data.resources[{i}]"
        resource = _object(item, where)
        tag = _text(resource.get("tag"), f"{where}.tag")
        url = _text(resource.get("resource_url"), f"{where}.resource_url")
        digest = _text(resource.get("digest"), f"{where}.digest")
        if tag and repo:
            events.append(PushEvent("harbor", repo, tag, _harbor_host(url), digest or None))
    return events


def _harbor_host(resource_url: str) -> str | None:
    """The registry in `hub.harbor.com/team/debian:1`; none in `team/debian:1`.

    Harbor writes its external URL's host in front of the repository, but without one configured
    the URL starts with the project. The first component is a host only by Docker's rule (a '.', a
    ':' or `localhost`), as in an image reference; otherwise the payload names no host (the loop
    matches on repository and tag anyway).
    """
    return resource_url.partition("/")[0] if names_registry(resource_url) else None


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _kind(value: Any) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def _object(value: Any, where: str) -> dict[str, Any]:
    """An object field, absent or null read as {}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UnknownPayload(f"{where} is {_kind(value)}, expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UnknownPayload(f"{where} is {_kind(value)}, expected a list")
    return value


def _text(value: Any, where: str) -> str:
    """A string field, absent or null read as ''."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnknownPayload(f"{where} is {_kind(value)}, expected a string")
    return value


def watched_pushes(events: Iterable[PushEvent], watched: Iterable[BaseKey]) -> list[BaseKey]:
    """The watched tags that the events name, matched by repository and tag (the host is not
    compared: payloads name it differently, or not at all, and each match costs one HEAD)."""
    pushed = {(event.repository, event.tag) for event in events}
    return sorted((key for key in watched if (key.repository, key.tag) in pushed), key=str)


def notified_line(events: Sequence[PushEvent], keys: Sequence[BaseKey]) -> str:
    """One line for a whole webhook body, however many events it holds (a body may carry 1,000)."""
    sources = ", ".join(sorted({event.source for event in events}))
    shown = ", ".join(map(str, keys[:3])) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return f"Notified by {sources}: {shown} {'was' if len(keys) == 1 else 'were'} pushed; checking now."

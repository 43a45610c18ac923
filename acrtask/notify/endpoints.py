"""Where notifications may go, and how their addresses are shown. Pure: no I/O.

An endpoint must be https, or plain http to this machine (localhost, 127.0.0.0/8, [::1]), or plain http
to a host listed in ACRTASK_NOTIFY_INSECURE_HOSTS: a POST that may carry a bearer token never crosses a
network in the clear unless someone asked for it by name.

Addresses are shown redacted (`https://hooks.slack.com/…`): chat webhooks carry their secret in the path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from acrtask.errors import ValidationError
from acrtask.insecure import is_listed, normalised
from acrtask.model import BaseImageTrigger, UpdateTriggerPayloadType
from acrtask.reference import is_loopback_host

INSECURE_HOSTS_ENV = "ACRTASK_NOTIFY_INSECURE_HOSTS"
MAX_URL = 2048


def plain_http_hosts(environ: Mapping[str, str]) -> frozenset[str]:
    """ACRTASK_NOTIFY_INSECURE_HOSTS=host[:port],...: the hosts notifications may reach over plain http,
    spelt as registries are (a bare IPv6 address gets its brackets), so insecure.is_listed reads them."""
    return normalised(_bracketed(entry.strip()) for entry in environ.get(INSECURE_HOSTS_ENV, "").split(","))


def _bracketed(host: str) -> str:
    try:
        return f"[{ipaddress.IPv6Address(host)}]"
    except ValueError:
        return host


def check_url(text: str, flag: str, allowed_http: frozenset[str] = frozenset()) -> str:
    """The endpoint, checked: http(s), a host, no credentials in it, https unless loopback or allowed."""
    url = text.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"Invalid {flag}: {exc}.", "Give a URL such as https://hooks.example.com/acrtask.") \
            from None
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"Invalid {flag} '{redact(url)}': expected an http(s) URL with a host.",
                              "Give a URL such as https://hooks.example.com/acrtask.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(f"Invalid {flag}: credentials in the URL are not accepted.",
                              "Use --update-trigger-payload-type Token with --update-trigger-token instead.")
    if parts.scheme == "http" and not plain_http_allowed(parts.hostname, port, allowed_http):
        raise ValidationError(
            f"{flag} {redact(url)} is plain http to another machine: a notification must not cross a network "
            "in the clear.", f"Use https, or list the host in {INSECURE_HOSTS_ENV} to allow it.")
    return url


def plain_http_allowed(host: str, port: int | None, allowed: frozenset[str]) -> bool:
    """`host` as urlsplit gives it (an IPv6 address without brackets): loopback, or listed by host or host:port."""
    address = f"[{host}]" if ":" in host else host
    return is_loopback_host(host) or is_listed(address if port is None else f"{address}:{port}", allowed)


def sendable(url: str, allowed_http: frozenset[str]) -> bool:
    """At send time: the same rule (the environment of watch may differ from the one that stored it)."""
    try:
        check_url(url, "endpoint", allowed_http)
    except ValidationError:
        return False
    return True


def redact(url: str) -> str:
    """`scheme://host[:port]/…`: what logs, errors and listings show of an endpoint."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def apply_settings(base: BaseImageTrigger, endpoint: str | None, payload_type: UpdateTriggerPayloadType | None,
                   token: str | None) -> BaseImageTrigger:
    """`--update-trigger-endpoint/-payload-type/-token` applied (None: not given; "": cleared)."""
    if endpoint is not None:
        base = replace(base, update_trigger_endpoint=endpoint or None)
    if payload_type is not None:
        base = replace(base, update_trigger_payload_type=payload_type)
    if token is not None:
        base = replace(base, update_trigger_token=token or None)
    if payload_type is UpdateTriggerPayloadType.TOKEN and not base.update_trigger_endpoint:
        raise ValidationError("--update-trigger-payload-type Token needs an --update-trigger-endpoint.",
                              "Give the endpoint the token is sent to.")
    if token and base.update_trigger_payload_type is not UpdateTriggerPayloadType.TOKEN:
        raise ValidationError("--update-trigger-token is sent only with --update-trigger-payload-type Token.",
                              "Give --update-trigger-payload-type Token as well.")
    return base

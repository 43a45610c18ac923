"""The registry transport's pure rules: its knobs (Policy), proxies, Retry-After, which failures are worth a
retry, and errors that say what went wrong and what to do. Nothing here sends a request: http.py does.

The layers that send (retry.py, authorizer.py, circuit.py, pacing.py, over http.py's connections) ask these
rules; the per-registry circuit and pacing state is health.py.
"""

from __future__ import annotations

import email.utils
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from acrtask.errors import ManifestNotFoundError, RegistryError
from acrtask.insecure import INSECURE_ENV

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Policy:
    """Knobs of the transport. Defaults suit polling thousands of tags an hour."""

    concurrency: int = 16          # requests in flight per registry (and connections kept per registry)
    attempts: int = 4              # tries per request, the first included
    backoff_base: float = 0.5      # seconds before the 1st retry; doubles per retry (jittered)
    backoff_cap: float = 10.0
    retry_after_cap: float = 60.0  # never wait longer than this for one Retry-After
    circuit_threshold: int = 5     # consecutive failures that make a registry "failing"
    circuit_base: float = 15.0     # first pause of a failing registry; doubles per trip
    circuit_cap: float = 600.0     # the longest pause, jitter included (watch lowers it below its poll interval)
    low_rate_fraction: float = 0.1  # below this share of RateLimit-Limit, space requests out
    pace_cap: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    token_margin: float = 10.0     # renew a token this many seconds before it expires

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, so retries spread out."""
        delay = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        return delay * (0.5 + random() / 2)


# -- proxies ------------------------------------------------------------------------------------


def proxy_for(url: str, host: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) asks for, as curl and httpx read it."""
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    scheme = url.split(":", 1)[0]
    return proxies.get(scheme) or proxies.get("all")


# -- Retry-After -------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After of delta-seconds or an HTTP-date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


# -- errors with hints -------------------------------------------------------------------------------------

_HTTP_TO_HTTPS = ("wrong version number", "record layer failure", "packet length too long", "http_request")
_NO_DNS = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
           "no address associated", "getaddrinfo failed")


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_retryable(exc: httpx.TransportError) -> bool:
    if isinstance(exc, httpx.ConnectError) and _tls_problem(str(exc).lower()):
        return False  # a TLS misconfiguration does not heal in a second
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _tls_problem(low: str) -> bool:
    return any(marker in low for marker in _HTTP_TO_HTTPS) or "certificate verify failed" in low


def transport_error(exc: httpx.TransportError, where: object, host: str) -> RegistryError:
    """A RegistryError for a failure below HTTP, with the hint that fixes the usual cause."""
    detail = one_line(str(exc)) or exc.__class__.__name__
    low = " ".join([detail.lower(), *_causes(exc)])
    if isinstance(exc, httpx.TimeoutException):
        kind = {httpx.ConnectTimeout: "connecting", httpx.ReadTimeout: "waiting for the answer",
                httpx.WriteTimeout: "sending", httpx.PoolTimeout: "waiting for a connection"}
        phase = kind.get(type(exc), "talking")
        return RegistryError(f"{where}: timed out {phase} ({host}).",
                             "The registry is slow or unreachable; check the network or try again later.",
                             code="TIMEOUT")
    if any(marker in low for marker in _HTTP_TO_HTTPS):
        return RegistryError(f"{where}: {host}: server gave HTTP response to HTTPS client.",
                             f"If {host} is a plain-HTTP registry you trust, add it to {INSECURE_ENV}.",
                             code="TLS")
    if "certificate verify failed" in low:
        return RegistryError(f"{where}: the TLS certificate of {host} is not trusted ({detail}).",
                             "Install the registry's CA certificate (SSL_CERT_FILE), or for a test registry "
                             f"add it to {INSECURE_ENV}.", code="TLS")
    if "refused" in low:
        return RegistryError(f"{where}: connection to {host} refused.",
                             "Check that the registry is running and that host and port are right.",
                             code="UNREACHABLE")
    if any(marker in low for marker in _NO_DNS):
        return RegistryError(f"{where}: cannot resolve {host}.", "Check the registry name and DNS.",
                             code="UNREACHABLE")
    return RegistryError(f"{where}: cannot talk to {host}: {detail}.",
                         "Check the network and the registry address.", code="UNREACHABLE")


def _causes(exc: BaseException) -> list[str]:
    """The texts of the exceptions under `exc` (anyio hides 'connection refused' under 'All connection
    attempts failed')."""
    found: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen and len(found) < 8:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            found.append("refused")
        found.append(str(current).lower())
        for inner in getattr(current, "exceptions", ()):  # ExceptionGroup from happy-eyeballs connects
            found.extend(_causes(inner) + [str(inner).lower()])
        current = current.__cause__ or current.__context__
    return found


def oci_error(body: bytes) -> tuple[str | None, str]:
    """The first OCI error (`code`, `message`) of an error body; plain-text bodies give their first line."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        text = body[:300].decode("utf-8", "replace")
        return None, one_line(text.splitlines()[0] if text.strip() else "")
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code, message = errors[0].get("code"), errors[0].get("message")
        return (str(code) if code else None), one_line(str(message or ""))
    if isinstance(document, dict) and isinstance(document.get("details"), str):
        return None, one_line(document["details"])  # token servers' {"details": "..."} shape
    return None, ""


def status_error(status: int, body: bytes, where: object, host: str, registry: str,
                 not_found: bool = False) -> RegistryError:
    """A RegistryError (or ManifestNotFoundError) for an HTTP error answer, carrying the OCI code."""
    code, message = oci_error(body)
    said = f" ({code}: {message})" if code and message else (f" ({message})" if message else "")
    if not_found and status == 404:
        return ManifestNotFoundError(f"{where}: not found in {host}{said}.",
                                     "Check the repository and tag (or digest) exist.",
                                     code=code or "MANIFEST_UNKNOWN", status=status)
    hint = {
        401: f"Check the credentials in your Docker config (docker login {registry}) and that the "
             "repository exists (some registries answer 401 for unknown repositories).",
        403: f"The credentials in your Docker config lack pull access; check them (docker login {registry}).",
        404: "Check the registry address and the repository name.",
        429: "The registry is rate-limiting acrtask; check less often, or log in to get a higher limit.",
    }.get(status)
    if status == 400 and "https server" in message.lower():
        hint = f"{host} speaks HTTPS: remove it from {INSECURE_ENV}."
    if hint is None:
        hint = ("The registry is failing; acrtask retries later." if status >= 500
                else "The registry refused the request; check the reference.")
    phrase = httpx.codes.get_reason_phrase(status)
    return RegistryError(f"{where}: {host} answered {status} {phrase}{said}.", hint,
                         code=code or _default_code(status), status=status)


def _default_code(status: int) -> str | None:
    return {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(status)

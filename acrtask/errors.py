"""Every error acrtask raises on purpose: one line saying what happened, and a hint saying what to do.

The exit code lives on the class, so the CLI has one place that turns errors into exit codes.
"""

from __future__ import annotations

import unicodedata

# Characters that would break an error's one line or fool a terminal: controls (newline, escape),
# invisible formatting (bidi overrides), line separators, and lone surrogates (undecodable bytes).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(text: str) -> str:
    """`text` for one line of a terminal: unprintable characters escaped as Python writes them."""
    out = []
    for char in text:
        if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8 (surrogateescape): show the byte
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif unicodedata.category(char) in _UNPRINTABLE:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


class AcrTaskError(Exception):
    """Base class. `message` says what happened; `hint` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class ValidationError(AcrTaskError):
    """Bad input from the user: flags, names, references, schedules."""

    exit_code = 2


class NotFoundError(AcrTaskError):
    """A task, run, or image that does not exist."""

    exit_code = 3


class StateError(AcrTaskError):
    """The state database cannot be read or written (corrupt, newer schema, permissions, disk full)."""

    exit_code = 1


class RegistryError(AcrTaskError):
    """A registry refused or failed a request. `code` is the OCI error code when the registry sent one."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint)
        self.code = code
        self.status = status


class CircuitOpenError(RegistryError):
    """The registry's circuit is open: no request was sent. `retry_after`: seconds until a probe may go."""

    def __init__(self, message: str, hint: str, retry_after: float) -> None:
        super().__init__(message, hint, code="UNAVAILABLE")
        self.retry_after = retry_after


FAILURE_STATUSES = frozenset({500, 502, 503, 504})  # count against the registry's circuit
_OUTAGE_CODES = frozenset({"UNAVAILABLE", "TIMEOUT", "UNREACHABLE"})


def is_outage(error: BaseException | None) -> bool:
    """Whether `error` says the registry is not serving at all (down, hanging, unreachable, rate-limiting),
    as opposed to an answer about one reference (404, 401, a bad manifest)."""
    if not isinstance(error, RegistryError):
        return False
    return error.code in _OUTAGE_CODES or error.status in FAILURE_STATUSES or error.status == 429


class ManifestNotFoundError(RegistryError):
    """The tag or digest does not exist in the registry. Never retried."""

    exit_code = 3


class BuildError(AcrTaskError):
    """A build or push failed, or the builder could not be started."""

    exit_code = 1


class BuildTimeoutError(BuildError):
    """A build step ran past its timeout; its processes were stopped."""


class BuildCanceledError(BuildError):
    """The build was canceled (Ctrl-C, `cancel.set()`); its processes were stopped."""

    exit_code = 130  # the shell's convention for "ended by SIGINT"

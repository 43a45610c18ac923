"""What every builder shares: the build request, its result, the Builder protocol, and helpers for the
builder modules (which builder a name means is builders/local.py).

Builders turn a BuildSpec into argument lists (pure `command` functions, tested by tables) and run
them through `process.run`, the only place a subprocess starts.
"""

from __future__ import annotations

import re
import shlex
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from acrtask import dockerfile, insecure, process
from acrtask.errors import AcrTaskError, BuildCanceledError, BuildError, BuildTimeoutError, ValidationError
from acrtask.platform import Platform
from acrtask.reference import ImageRef
from acrtask.shellvars import is_portable_name

__all__ = [
    "BuildResult",
    "BuildSpec",
    "Builder",
    "LogTail",
    "Steps",
    "base_images",
    "build_arg_flags",
    "builder_env",
    "child_env",
    "is_insecure",
    "pairs",
    "pull_insecure",
    "which",
]

# Secret args travel in the builder's environment: these names would change how the builder itself runs.
_RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "SHELL", "PWD", "TMPDIR", "TZ"})
_RESERVED_PREFIXES = ("LD_", "LC_", "XDG_", "BUILDAH_", "STORAGE_", "CONTAINERS_", "DOCKER_", "BUILDX_",
                      "BUILDKIT_", "PODMAN_", "REGISTRY_AUTH")
_FAILED_HINT = "Read the build log above for the failing step, fix it, and run the task again."
# What a builder gets of acrtask's environment: what it needs to run, reach registries and find its storage and
# credentials files. Nothing else: acrtask's own secrets (ACRTASK_WEBHOOK_TOKEN) and any password a variable
# holds (DOCKER_AUTH_CONFIG, DOCKER_PASSWORD, CI tokens) must not be readable in /proc/<build pid>/environ.
_BUILDER_ENV = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SOURCE_DATE_EPOCH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REGISTRY_AUTH_FILE", "DBUS_SESSION_BUS_ADDRESS",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_TLS",
    "DOCKER_BUILDKIT", "DOCKER_API_VERSION", "DOCKER_DEFAULT_PLATFORM", "DOCKER_CLI_EXPERIMENTAL",
    process.RUN_TAG,  # how a run's leftover build processes are found again
})
_BUILDER_ENV_PREFIXES = ("LC_", "XDG_", "BUILDAH_", "STORAGE_", "CONTAINERS_", "_CONTAINERS_", "PODMAN_",
                         "BUILDX_", "BUILDKIT_")
_SECRET_WORDS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "AUTH_CONFIG")


@dataclass(frozen=True)
class BuildSpec:
    """One build: what to build, how, and where to push it. Secret values never reach argv or logs."""

    context_dir: Path
    dockerfile: Path  # absolute
    # The names the builder tags (and pushes), {{.Run.ID}} filled: a task's fully qualified, a task file's build
    # step's as written (`app:1`; parsed, it would be docker.io/library/app:1, another name in buildah's storage).
    images: tuple[str, ...]
    build_args: Mapping[str, str]
    secret_args: Mapping[str, str]
    target: str | None
    platform: Platform
    no_cache: bool
    push: bool
    insecure_registries: frozenset[str]  # "host:port" reached over plain HTTP / without TLS verification
    annotations: Mapping[str, str]  # manifest annotations, e.g. org.opencontainers.image.base.name
    labels: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds for the whole build and push
    # A private auth file (builders/authfile.py) with the logins this build uses: a task's credentials. The
    # builder reads it through REGISTRY_AUTH_FILE (buildah, podman) or DOCKER_CONFIG (docker), never argv.
    auth_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.images:
            raise ValidationError("A build needs at least one image tag.", "Pass --image repo:tag.")
        if not self.dockerfile.is_absolute():
            raise ValidationError(f"The Dockerfile path {str(self.dockerfile)!r} is not absolute.",
                                  "Resolve it against the build context first.")
        if self.timeout is not None and self.timeout <= 0:
            raise ValidationError(f"The build timeout must be positive, not {self.timeout:g}.",
                                  "Pass --timeout in seconds, e.g. 3600.")
        for name in (*self.build_args, *self.secret_args):
            if not is_portable_name(name):
                raise ValidationError(f"Build argument name {name!r} is not valid.",
                                      "Use letters, digits and underscores, not starting with a digit.")
        both = sorted(set(self.build_args) & set(self.secret_args))
        if both:
            raise ValidationError(f"Build argument {both[0]} is given both as a plain and a secret arg.",
                                  "Pass it once, as --secret-arg if its value is sensitive.")
        for name in self.secret_args:
            if name.upper() in _RESERVED_ENV or name.upper().startswith(_RESERVED_PREFIXES):
                raise ValidationError(
                    f"Secret build argument {name} cannot be used: secrets reach the builder through its "
                    "environment, and this name would change how the builder runs.",
                    "Rename the ARG in the Dockerfile and the --secret-arg.")
            if "\0" in self.secret_args[name]:
                raise ValidationError(f"Secret build argument {name} contains a NUL character.",
                                      "Remove it from the value.")


@dataclass(frozen=True)
class BuildResult:
    pushed: dict[str, str] = field(default_factory=dict)  # image tag -> manifest digest; empty without push


class Builder(Protocol):
    name: str

    def available(self) -> bool: ...

    def build(self, spec: BuildSpec, log: Callable[[str], None], cancel: threading.Event) -> BuildResult: ...


# -- helpers for the builder modules -----------------------------------------------------------------


def which(program: str, env: Mapping[str, str] | None) -> str | None:
    """Where `program` is on the PATH of `env` (default: this process's PATH)."""
    return shutil.which(program, path=None if env is None else env.get("PATH", ""))


def builder_env(base: Mapping[str, str]) -> dict[str, str]:
    """The part of `base` (acrtask's environment) a builder needs; see _BUILDER_ENV."""
    return {
        name: value for name, value in base.items()
        if (name in _BUILDER_ENV or name.startswith(_BUILDER_ENV_PREFIXES))
        and (name == process.RUN_TAG or not any(word in name.upper() for word in _SECRET_WORDS))
    }


def child_env(base: Mapping[str, str], spec: BuildSpec) -> dict[str, str]:
    """The builder's environment: what it needs of `base`, plus the secret values, read by the un-valued
    --build-arg NAME, and the build's private auth file if it has one."""
    auth = {} if spec.auth_file is None else {"REGISTRY_AUTH_FILE": str(spec.auth_file),
                                              "DOCKER_CONFIG": str(spec.auth_file.parent)}
    return {**builder_env(base), **auth, **spec.secret_args}


def build_arg_flags(spec: BuildSpec) -> list[str]:
    """`--build-arg NAME=VALUE` for plain args; `--build-arg NAME` (value from the env) for secrets."""
    flags: list[str] = []
    for name, value in spec.build_args.items():
        flags += ["--build-arg", f"{name}={value}"]
    for name in spec.secret_args:
        flags += ["--build-arg", name]
    return flags


def pairs(flag: str, values: Mapping[str, str], prefix: str = "") -> list[str]:
    """`flag prefixKEY=VALUE` for each item, in the given order."""
    out: list[str] = []
    for key, value in values.items():
        out += [flag, f"{prefix}{key}={value}"]
    return out


def is_insecure(image: str | ImageRef, insecure_registries: frozenset[str]) -> bool:
    """True when the image's registry is one the spec reaches without TLS (acrtask/insecure.py's rule)."""
    try:
        ref = image if isinstance(image, ImageRef) else ImageRef.parse(image)
    except ValidationError:
        return False
    return insecure.is_chosen(ref, insecure_registries)


def base_images(spec: BuildSpec) -> list[ImageRef] | None:
    """The images the build pulls (FROM, COPY --from), or None when the Dockerfile cannot be scanned."""
    try:
        text = spec.dockerfile.read_text(encoding="utf-8")
        result = dockerfile.scan(text, spec.build_args, spec.target)  # secrets stay out of error texts
    except (OSError, UnicodeError, AcrTaskError):
        return None
    return [base.image for base in (result.runtime, *result.build_time) if base is not None]


def pull_insecure(spec: BuildSpec) -> bool:
    """Whether the build must pull without TLS verification: a base image is on an insecure registry.

    buildah's and podman's --tls-verify applies to every registry of the build, so it is set only when
    a FROM / COPY --from image needs it, not for every build with an insecure push target.
    When the Dockerfile cannot be scanned, any insecure registry in the spec counts (the build
    then reports its own error if the Dockerfile is really broken).
    """
    bases = base_images(spec)
    if bases is None:
        return bool(spec.insecure_registries)
    return any(is_insecure(ref, spec.insecure_registries) for ref in bases)


class LogTail:
    """Passes the builder's output lines on to `log`, and keeps the last ones to name a failure."""

    _ERROR = re.compile(r"^(?:error|ERROR|Error)\b[:!]?\s*")
    _LEVEL_ERROR = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')

    def __init__(self, log: Callable[[str], None], keep: int = 200) -> None:
        self._log = log
        self.lines: deque[str] = deque(maxlen=keep)

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self._log(line)

    def note(self, line: str) -> None:
        """A line of ours (the command being run): logged, but never taken as the builder's error."""
        self._log(line)

    def reset(self) -> None:
        self.lines.clear()

    def error_line(self) -> str:
        """The builder's own error text: its last `Error: ...` line, else its last non-empty line."""
        for line in reversed(self.lines):
            text = line.strip()
            if self._ERROR.match(text):
                return _shorten(self._ERROR.sub("", text, count=1) or text)
            level = self._LEVEL_ERROR.search(text)
            if level:
                return _shorten(level.group(1))
        for line in reversed(self.lines):
            if line.strip():
                return _shorten(line.strip())
        return "no output"


def _discard(line: str) -> None:
    """A sink for a LineRedactor used only for its `redact`."""


def _sentence(text: str) -> str:
    """`text` ending in a full stop, so the hint after it reads as a new sentence."""
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Steps:
    """Runs a build's commands one after another, sharing one deadline, one log and one cancel event."""

    def __init__(self, builder: str, spec: BuildSpec, env: Mapping[str, str], log: Callable[[str], None],
                 cancel: threading.Event) -> None:
        self.builder = builder
        self.spec = spec
        self.env = env
        self.tail = LogTail(log)
        self.cancel = cancel
        self._secrets = tuple(spec.secret_args.values())
        self._redact = process.LineRedactor(self._secrets, _discard).redact  # for our own lines
        self._end = None if spec.timeout is None else time.monotonic() + spec.timeout

    def log(self, line: str) -> None:
        self.tail.note(self._redact(line))

    def run(self, argv: Sequence[str], what: str) -> None:
        """Run one command; a non-zero exit becomes BuildError with the builder's last error line."""
        if self.cancel.is_set():
            raise self._canceled(f"{what} was not started")
        timeout = self._remaining(what)
        self.tail.reset()
        # argv never holds a secret value by construction; redacting the echo guards against mistakes.
        self.tail.note(self._redact("$ " + shlex.join(argv)))
        try:
            code = process.run(argv, self.env, self.tail, self.cancel, timeout, self._secrets)
        except BuildTimeoutError:
            raise self._timeout(f"{what} was stopped") from None
        except BuildCanceledError:
            raise self._canceled(f"{what} was stopped") from None
        if code != 0:
            status = f"exit code {code}" if code > 0 else f"signal {-code}"
            raise BuildError(f"{self.builder}: {what} failed ({status}): {_sentence(self.tail.error_line())}",
                             _FAILED_HINT)

    def _remaining(self, what: str) -> float | None:
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise self._timeout(f"{what} was not started")
        return left

    def _canceled(self, outcome: str) -> BuildCanceledError:
        return BuildCanceledError(f"{self.builder}: the build was canceled; {outcome}.",
                                  "Run the task again when you are ready.")

    def _timeout(self, outcome: str) -> BuildTimeoutError:
        assert self.spec.timeout is not None
        return BuildTimeoutError(f"{self.builder}: the build did not finish within its {self.spec.timeout:g} s "
                                 f"timeout; {outcome}.",
                                 "Allow more time with --timeout, or make the build faster.")

"""A real CNCF distribution registry (Debian's ``docker-registry``) for tests.

It always serves on 127.0.0.1 with a config written here (never the package's
``/etc/docker/registry/config.yml``, which listens on all interfaces), and keeps its
storage and log in a private temp dir that is removed on exit.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

REGISTRY_BIN = "/usr/bin/docker-registry"
INSTALL_HINT = "run `sudo scripts/install-system-deps.sh` to install docker-registry, buildah, ..."

# docker-registry reads REGISTRY_* env vars as config overrides (REGISTRY_HTTP_ADDR=...): never pass them.
_SCRUBBED_ENV_PREFIXES = ("REGISTRY_", "OTEL_")


class RegistryStartError(RuntimeError):
    pass


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (racy by nature: LocalRegistry retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the only hash the registry accepts)."""
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        bcrypt = None
    if bcrypt is not None:
        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
    exe = shutil.which("htpasswd")
    if exe is None:
        raise RegistryStartError(f"`htpasswd` (apache2-utils) is missing: {INSTALL_HINT}")
    out = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [exe, "-nbB", "-C", "5", user, password], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return out.strip().splitlines()[0]


class LocalRegistry:
    """Context manager running ``docker-registry serve CONFIG`` on 127.0.0.1:<free port>.

    >>> with LocalRegistry(htpasswd=("alice", "pw")) as reg:
    ...     reg.url   # "http://127.0.0.1:PORT"
    """

    def __init__(
        self,
        *,
        htpasswd: tuple[str, str] | None = None,
        notify_url: str | None = None,
        notify_headers: dict[str, list[str]] | None = None,
        notify_ignored_media_types: list[str] | None = None,
        delete_enabled: bool = True,
        readonly: bool = False,
        startup_timeout: float = 10.0,
        binary: str = REGISTRY_BIN,
    ) -> None:
        self.htpasswd = htpasswd
        self.notify_url = notify_url
        self.notify_headers = dict(notify_headers or {})
        self.notify_ignored_media_types = list(notify_ignored_media_types or [])
        self.delete_enabled = delete_enabled
        self.readonly = readonly  # serves pulls, refuses every push (distribution's maintenance mode)
        self.startup_timeout = startup_timeout
        self._instance = secrets.token_hex(8)
        self.binary = binary
        self.port = 0
        self.host = ""
        self.url = ""
        self.tmpdir: Path | None = None
        self.config_path: Path | None = None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    # -- config --------------------------------------------------------------------------------------

    def _config(self, port: int) -> dict:
        assert self.tmpdir is not None
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.tmpdir / "data")},
                "delete": {"enabled": self.delete_enabled},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": self.readonly}},
            },
            "http": {
                "addr": f"127.0.0.1:{port}",
                "secret": secrets.token_hex(16),
                # A mark of this instance: on a port clash, another test's registry must not pass as ours.
                "headers": {"X-Content-Type-Options": ["nosniff"], "X-Acrtask-Test": [self._instance]},
            },
        }
        if self.htpasswd is not None:
            user, password = self.htpasswd
            path = self.tmpdir / "htpasswd"
            path.write_text(htpasswd_line(user, password) + "\n")
            cfg["auth"] = {"htpasswd": {"realm": "acrtask-test", "path": str(path)}}
        if self.notify_url is not None:
            endpoint: dict = {
                "name": "acrtask-test",
                "disabled": False,
                "url": self.notify_url,
                "headers": self.notify_headers,
                "timeout": "1s",
                "threshold": 3,
                "backoff": "200ms",
            }
            if self.notify_ignored_media_types:
                endpoint["ignoredmediatypes"] = self.notify_ignored_media_types
            cfg["notifications"] = {"events": {"includereferences": True}, "endpoints": [endpoint]}
        return cfg

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> LocalRegistry:
        if not os.access(self.binary, os.X_OK):
            raise RegistryStartError(f"{self.binary} not found or not executable: {INSTALL_HINT}")
        self.tmpdir = Path(tempfile.mkdtemp(prefix="acrtask-registry-"))
        try:
            (self.tmpdir / "data").mkdir()
            self.log_path = self.tmpdir / "registry.log"
            self.config_path = self.tmpdir / "config.yml"
            last_error = ""
            for _attempt in range(3):  # a free port can be taken between probe and bind (xdist)
                port = free_port()
                # JSON is valid YAML; the registry's yaml.v2 parser reads it fine.
                self.config_path.write_text(json.dumps(self._config(port), indent=2))
                if self._spawn_and_wait(port):
                    return self
                last_error = self.log_tail()
                if "address already in use" not in last_error:
                    break
            raise RegistryStartError(f"docker-registry did not start; log tail:\n{last_error}")
        except BaseException:
            self.stop()
            raise

    def _spawn_and_wait(self, port: int) -> bool:
        assert self.log_path is not None and self.config_path is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        self._log_fh = open(self.log_path, "ab")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [self.binary, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    self._terminate()
                    return False
                try:
                    r = client.get(f"{url}/v2/")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if r.status_code in (200, 401) and r.headers.get("x-acrtask-test") == self._instance:
                    self.port, self.host, self.url = port, f"127.0.0.1:{port}", url
                    return True
                time.sleep(0.05)
        self._terminate()
        with open(self.log_path, "ab") as fh:
            fh.write(f"\n[LocalRegistry] GET {url}/v2/ not answered in {self.startup_timeout}s\n".encode())
        return False

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def stop(self) -> None:
        self._terminate()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def access_log(self) -> list[tuple[str, str, str]]:
        """(method, path, status) of every request the registry has logged."""
        assert self.log_path is not None
        found = re.findall(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3})', self.log_path.read_text(errors="replace"))
        return [(method, path, status) for method, path, status in found]

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalRegistry(url={self.url!r}, auth={self.htpasswd is not None})"


class NotificationSink:
    """A tiny HTTP server on 127.0.0.1 that records distribution notification envelopes.

    ``url`` goes into ``LocalRegistry(notify_url=...)``; ``wait_for(pred)`` returns the first event
    (an item of an envelope's ``events``) matching ``pred`` within a bounded time.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.events: list[dict] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    events = json.loads(body).get("events", [])
                except ValueError:
                    events = []
                with sink._cond:
                    sink.requests.append((dict(self.headers.items()), body))
                    sink.events.extend(e for e in events if isinstance(e, dict))
                    sink._cond.notify_all()
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def __enter__(self) -> NotificationSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if pred(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [
                        (e.get("action"), e.get("target", {}).get("repository"), e.get("target", {}).get("tag"))
                        for e in self.events
                    ]
                    raise TimeoutError(f"no matching notification within {timeout}s; got {summary}")
                self._cond.wait(remaining)

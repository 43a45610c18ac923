"""A real podman build endpoint for tests: `podman system service tcp:127.0.0.1:PORT`.

Each service keeps its own storage (vfs, --root/--runroot under a temp dir), so services, and the
buildah tests running beside them under pytest-xdist, never share containers/storage locks. It runs
in its own session; `stop` ends the whole process tree (the service and the build steps it runs), the
way a build host going down would, and removes the storage. podman 4.3's remote client chooses the
isolation of RUN steps (BUILDAH_ISOLATION in the client's environment: chroot, as for buildah here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.procs import descendants
from tests.support.registry import INSTALL_HINT, free_port

PODMAN = "podman"
# Variables a service must not inherit: they would point it at other storage or another service.
_SCRUBBED = ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_STORAGE_CONF", "STORAGE_DRIVER", "DOCKER_HOST",
             "REGISTRY_AUTH_FILE")


class PodmanStartError(RuntimeError):
    pass


class PodmanService:
    """`with PodmanService() as ep: ep.url` -> "tcp://127.0.0.1:PORT"."""

    def __init__(self, *, insecure_loopback: bool = False, startup_timeout: float = 30.0) -> None:
        self.insecure_loopback = insecure_loopback  # as a daemon's insecure-registries: for the Docker API
        self.startup_timeout = startup_timeout
        self.tmpdir: Path | None = None
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PodmanService:
        if shutil.which(PODMAN) is None:
            raise PodmanStartError(f"`podman` is not installed: {INSTALL_HINT}")
        self.tmpdir = Path(tempfile.mkdtemp(prefix="acrtask-podman-"))
        try:
            conf = self.tmpdir / "registries.conf"
            text = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
            if self.insecure_loopback:
                text += '[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n'
            conf.write_text(text)
            (self.tmpdir / "tmp").mkdir()
            for _attempt in range(3):  # a free port can be taken between probe and bind (xdist)
                if self._spawn_and_wait(free_port()):
                    return self
            raise PodmanStartError(f"podman system service did not start; log tail:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _spawn_and_wait(self, port: int) -> bool:
        assert self.tmpdir is not None
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(CONTAINERS_REGISTRIES_CONF=str(self.tmpdir / "registries.conf"), TMPDIR=str(self.tmpdir / "tmp"),
                   BUILDAH_ISOLATION="chroot")
        argv = [PODMAN, "--root", str(self.tmpdir / "root"), "--runroot", str(self.tmpdir / "run"),
                "--storage-driver", "vfs", "system", "service", "--time", "0", f"tcp:127.0.0.1:{port}"]
        with open(self.tmpdir / "service.log", "ab") as log:
            self._proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,  # noqa: S603
                                          stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    self._proc = None
                    return False
                try:
                    if client.get(f"http://127.0.0.1:{port}/_ping").text == "OK":
                        self.port, self.url = port, f"tcp://127.0.0.1:{port}"
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self._kill()
        return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def build_steps(self, marker: str) -> int:
        """How many RUN steps of this service run `sleep MARKER` now (one per build running that step)."""
        if self._proc is None:
            return 0
        count = 0
        for pid in descendants(self._proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                count += 1
        return count

    def _kill(self) -> None:
        """SIGKILL the service's whole tree: a build host that goes away, builds and all."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pids = descendants(proc.pid)
        for target in (-proc.pid, *pids):
            try:
                os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(timeout=10)

    def stop(self) -> None:
        self._kill()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.tmpdir / "service.log" if self.tmpdir else None
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

"""`acrtask task watch` as a real subprocess for end-to-end tests: its log read as it comes, so a test waits
for what watch says (its "Watching N base image tag(s)" line once every base has been checked once) instead
of sleeping; and the app-on-a-base set-up most watch tests start from."""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import IO, TYPE_CHECKING

from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from tests.integration.workbench import Workbench

WATCHING = " Watching "  # in watch's line once it has taken its first look


class WatchProcess:
    """A watch started with `Workbench.popen`; stdout and stderr are read on threads of their own (a pipe
    left unread would fill and block watch)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._out: list[str] = []
        self._err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((proc.stdout, self._out), (proc.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def err(self) -> str:
        return "".join(self._err)

    def wait_for_line(self, text: str, timeout: float, what: str) -> None:
        """Until watch has logged a line holding `text` (it must not exit meanwhile)."""
        wait_for(lambda: text in self.err or self.proc.poll() is not None, timeout, what)
        assert text in self.err, f"watch ended (exit {self.proc.poll()}) before {what}:\n{self.err[-3000:]}"

    def wait(self, timeout: float = 60) -> tuple[str, str]:
        """Until it exits (after a signal): what it wrote to stdout and stderr."""
        self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return "".join(self._out), self.err

    def stop(self) -> tuple[str, str]:
        """SIGTERM, as systemd stops it; it must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.wait()
        assert self.proc.returncode == 0, err
        return out, err


def start_watch(bench: Workbench, *args: str) -> WatchProcess:
    """`task watch ARGS`, returned once it has taken its first look: every base checked once, the runs of other
    processes read, the branch heads looked at. What is pushed after that is a move it has to notice."""
    watch = WatchProcess(bench.popen("task", "watch", *args))
    try:
        watch.wait_for_line(WATCHING, 90, "watch to take its first look")
    except BaseException:
        watch.proc.kill()
        watch.wait()
        raise
    return watch


def app_on_base(bench: Workbench, extra: tuple[str, ...] = ()) -> str:
    """`app-task` built FROM baseimages/node:1 (pushed now, v1) and run once, so its base is recorded; the
    base's digest."""
    digest = bench.push_base("baseimages/node:1", "v1")
    ctx = bench.context("app", f"FROM {bench.host}/baseimages/node:1\nRUN echo app > /app\n")
    bench.create("app-task", ctx, "app:latest", extra=extra)
    assert bench.run("app-task").code == 0
    return digest

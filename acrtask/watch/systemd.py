"""systemd's notify protocol (sd_notify(3)), for `Type=notify` and `WatchdogSec=`: a datagram of
`KEY=value` lines to the socket in $NOTIFY_SOCKET (a path, or an abstract name after `@`).

READY=1 goes once the loop has started; WATCHDOG=1 every half $WATCHDOG_USEC from the loop itself, so a
loop that hangs stops the pings and systemd restarts the service; STOPPING=1 when it stops; STATUS= says
what it watches. Without $NOTIFY_SOCKET nothing is sent.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from acrtask.watch.observer import Observer, WatchState

STATUS_EVERY = 10.0  # seconds between STATUS= updates when it changed


def _address(value: str) -> str | bytes:
    return b"\0" + value[1:].encode() if value.startswith("@") else value


class SystemdNotifier(Observer):
    def __init__(self, address: str, watchdog_seconds: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = _address(address)
        self.watchdog_every = watchdog_seconds / 2 if watchdog_seconds else None
        self.clock = clock
        self.ready = False
        self._last_ping = 0.0
        self._last_status = (0.0, "")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        address = environ.get("NOTIFY_SOCKET", "")
        if not address or not (address.startswith("/") or address.startswith("@")):
            return None
        watchdog = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(address, watchdog)

    def send(self, *fields: str) -> bool:
        """One datagram; False when systemd could not be told (never raises: watch goes on without it)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode() + b"\n")
            return True
        except OSError:
            return False

    def ticked(self, watcher: WatchState, now: float) -> None:
        moment = self.clock()
        status = (f"Watching {len(watcher.plan.interests)} base tag(s) for {len(watcher.tasks)} task(s); "
                  f"{len(watcher.running)} running, {len(watcher.queued)} queued.")
        if not self.ready:
            self.ready = self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
            self._last_status = (moment, status)
        elif status != self._last_status[1] and moment - self._last_status[0] >= STATUS_EVERY:
            self.send(f"STATUS={status}")
            self._last_status = (moment, status)
        if self.watchdog_every is not None and moment - self._last_ping >= self.watchdog_every:
            self.send("WATCHDOG=1")
            self._last_ping = moment

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=Stopping: running builds get their grace period.")

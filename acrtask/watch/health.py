"""GET /healthz and /readyz: whether watch is alive, and whether it is ready (doing its job).

- alive: the loop has ticked within `max_tick_gap` seconds (it ticks at least once a second when well),
  or it is stopping (builds get their grace period then, and the loop does not tick);
- ready: alive, the state can be read (checked when asked, at most once a second), and at least one
  registry batch has come back (or no task watches a base yet).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from acrtask.triggers import BaseKey, Interest
from acrtask.watch.checks import CheckResult
from acrtask.watch.observer import Observer, WatchState

MAX_TICK_GAP = 30.0
PROBE_EVERY = 1.0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...]

    def text(self, good: str) -> str:
        return (good if self.ok else "not " + good) + "".join(f"\n- {r}" for r in self.reasons) + "\n"


class Health(Observer):
    def __init__(self, state_probe: Callable[[], object], *, max_tick_gap: float = MAX_TICK_GAP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state_probe, self.max_tick_gap, self.clock = state_probe, max_tick_gap, clock
        self.last_tick: float | None = None
        self.batches = 0
        self.watched = 0
        self.is_stopping = False
        self._lock = threading.Lock()
        self._probed: tuple[float, str | None] | None = None  # (when, the error) of the last state probe

    def ticked(self, watcher: WatchState, now: float) -> None:
        self.last_tick = self.clock()
        self.watched = len(watcher.plan.interests)

    def checked(self, result: CheckResult, interests: Mapping[BaseKey, Sequence[Interest]]) -> None:
        self.batches += 1

    def stopping(self) -> None:
        self.is_stopping = True

    def liveness(self) -> Verdict:
        if self.is_stopping or self.last_tick is None:
            return Verdict(True, ("stopping",) if self.is_stopping else ("starting",))
        gap = self.clock() - self.last_tick
        if gap > self.max_tick_gap:
            return Verdict(False, (f"the watch loop has not ticked for {gap:.0f}s",))
        return Verdict(True, ())

    def readiness(self) -> Verdict:
        reasons = []
        if self.is_stopping:
            reasons.append("watch is stopping")
        elif self.last_tick is None:
            reasons.append("the watch loop has not started")
        elif not (alive := self.liveness()).ok:
            reasons.extend(alive.reasons)
        if (error := self._state_error()) is not None:
            reasons.append(f"the state cannot be read: {error}")
        if self.batches == 0 and self.watched > 0:
            reasons.append("no registry check has come back yet")
        return Verdict(not reasons, tuple(reasons))

    def _state_error(self) -> str | None:
        with self._lock:  # probes from several connections at once read the state once
            now = self.clock()
            if self._probed is None or now - self._probed[0] >= PROBE_EVERY:
                try:
                    self.state_probe()
                    error = None
                except Exception as exc:  # noqa: BLE001 - any failure to read is "not ready", with its reason
                    error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._probed = (now, error)
            return self._probed[1]

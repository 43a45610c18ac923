"""Runs of other processes on the same home, read from their records: a `task run` in another shell whose
push is a base of other tasks must trigger them at once, as a push by watch itself does; and a run whose
process died (SIGKILL, OOM, a watch killed mid-build) must not stay Running for ever: it is recorded Error
after the build processes it left behind are stopped (crash recovery). Watch asks; what to run again is
the scheduler's decision (watch/scheduler.py)."""

from __future__ import annotations

from typing import NamedTuple

from acrtask.errors import AcrTaskError
from acrtask.process import kill_tagged
from acrtask.run_record import Run, RunStatus
from acrtask.runids import run_number
from acrtask.runs import RunStore, pid_alive

# `task run --no-wait` records its starter's pid; the detached child puts its own there a moment after the
# starter exits. A Queued run whose process is gone is taken as abandoned only after this long.
QUEUED_GRACE = 30.0


def _number(run_id: str) -> int:
    return run_number(run_id) or 0


class Settled(NamedTuple):
    run: Run  # as it was before it was recorded Error
    stopped: int  # build processes it had left running


def settle(runs: RunStore, run: Run) -> Settled:
    """Record a run whose process is gone as Error, after stopping the build processes it left behind (a
    build runs in a session of its own, so it outlives a starter killed with SIGKILL)."""
    stopped = kill_tagged(runs.process_tag(run.run_id))
    who = f" (pid {run.pid})" if run.pid else ""
    runs.finish(run, RunStatus.ERROR, f"interrupted: the acrtask process running it{who} stopped")
    return Settled(run, stopped)


class FollowedRuns:
    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.seen = 0  # the highest run number looked at
        self.open: set[str] = set()  # runs of other processes that have not ended yet
        self._latest: dict[str, Run] = {}  # the last record read of each open run (its pid)
        self._gone_since: dict[str, float] = {}  # open Queued runs whose process was found gone, since when
        self._data_version: int | None = None

    def start(self, history: list[Run]) -> list[Settled]:
        """Take every run at start (`history`): follow the unfinished ones another live process runs; settle
        those whose process is gone (returned, oldest first, for watch to run their trigger again)."""
        self.seen = max((_number(run.run_id) for run in history), default=0)
        live = [run for run in history if not run.status.is_terminal and pid_alive(run.pid)]
        self.open = {run.run_id for run in live}
        self._latest = {run.run_id: run for run in live}
        gone = [run for run in history if not run.status.is_terminal and run.run_id not in self.open]
        return [settle(self.runs, run) for run in reversed(gone)]

    def pushed(self, own: set[str]) -> list[Run]:
        """Runs of other processes that succeeded since the last look, oldest first."""
        version = self.runs.data_version()
        if version == self._data_version:
            return []  # nobody else wrote to the database since
        self._data_version = version
        # A run's id is taken in the transaction that records it, so new runs are simply the higher numbers.
        new = self.runs.after(self.seen)
        if new:
            self.seen = _number(new[-1].run_id)
        self.open |= {run.run_id for run in new if run.run_id not in own}
        found = {run.run_id: run for run in self.runs.several(self.open)}
        succeeded = []
        for run_id in sorted(self.open, key=_number):
            run = found.get(run_id)
            if run is None:  # pruned: nothing to learn from it
                self._close(run_id)
                continue
            self._latest[run_id] = run
            if run.status.is_terminal:
                self._close(run_id)
                if run.status is RunStatus.SUCCEEDED:
                    succeeded.append(run)
        return succeeded

    def abandoned(self, now: float) -> list[Settled]:
        """Settle open runs whose recorded process is gone, read afresh: Running ones at once, Queued ones
        once their process has been gone for QUEUED_GRACE seconds. A killed process touches no file, so
        this looks at every open run's pid each time (a signal 0 each: cheap)."""
        found = []
        for run_id in sorted(self.open, key=_number):
            seen = self._latest.get(run_id)
            if seen is None or pid_alive(seen.pid):
                self._gone_since.pop(run_id, None)
                continue
            if seen.status is not RunStatus.RUNNING and now - self._gone_since.setdefault(run_id, now) < QUEUED_GRACE:
                continue
            run = self._read(run_id)  # it may have moved on since it was last read (a new pid, an end)
            if run is None or run.status.is_terminal:
                continue  # pushed() takes it from here
            if run.pid != seen.pid and pid_alive(run.pid):
                continue
            self._close(run_id)
            found.append(settle(self.runs, run))
        return found

    def _read(self, run_id: str) -> Run | None:
        try:
            run = self.runs.get(run_id)
        except (AcrTaskError, OSError):  # pruned or half-gone: nothing to learn from it
            self._close(run_id)
            return None
        self._latest[run_id] = run
        return run

    def _close(self, run_id: str) -> None:
        self.open.discard(run_id)
        self._latest.pop(run_id, None)
        self._gone_since.pop(run_id, None)

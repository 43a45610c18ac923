"""Runs of other processes that watch follows: a `task run` in another shell whose push is a base of
other tasks must trigger them at once, as a push by watch itself does."""

from __future__ import annotations

import time

from acrtask.errors import AcrTaskError
from acrtask.model import Run, RunStatus
from acrtask.runs import RUN_ID_PREFIX, RunStore


def _number(run_id: str) -> int:
    digits = run_id[len(RUN_ID_PREFIX):]
    return int(digits) if digits.isdigit() else 0


class FollowedRuns:
    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.known: set[str] = set()
        self.open: set[str] = set()  # runs of other processes that have not ended yet
        self._stamp = 0

    def start(self, history: list[Run], live: list[Run]) -> None:
        """`history`: every run at start; `live`: the unfinished ones another live process is running."""
        self.known = {run.run_id for run in history}
        self.open = {run.run_id for run in live}

    def pushed(self, own: set[str]) -> list[Run]:
        """Runs of other processes that succeeded since the last look, oldest first."""
        try:
            stamp = self.runs.folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        # Records are renamed into place, so any new or changed run touches the folder. File times are
        # coarse (a few ms), so a folder touched within the last second is always looked at.
        if stamp == self._stamp and time.time_ns() - stamp > 1_000_000_000:
            return []
        self._stamp = stamp
        # By name, not by number: a number is taken before its record is written, so ids can appear
        # out of order.
        new = {path.stem for path in self.runs.folder.glob(f"{RUN_ID_PREFIX}*.json")} - self.known
        self.known |= new
        self.open |= new - own
        succeeded = []
        for run_id in sorted(self.open, key=_number):
            try:
                run = self.runs.get(run_id)
            except (AcrTaskError, OSError):  # pruned or half-gone: nothing to learn from it
                self.open.discard(run_id)
                continue
            if run.status.is_terminal:
                self.open.discard(run_id)
                if run.status is RunStatus.SUCCEEDED:
                    succeeded.append(run)
        return succeeded

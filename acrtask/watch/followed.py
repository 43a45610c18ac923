"""Runs of other processes that watch follows: a `task run` in another shell whose push is a base of
other tasks must trigger them at once, as a push by watch itself does."""

from __future__ import annotations

from acrtask.model import Run, RunStatus
from acrtask.runs import RunStore


class FollowedRuns:
    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.seen = 0  # the highest run number looked at
        self.open: set[str] = set()  # runs of other processes that have not ended yet
        self._data_version: int | None = None

    def start(self, history: list[Run], live: list[Run]) -> None:
        """`history`: every run at start; `live`: the unfinished ones another live process is running."""
        self.seen = max((run.number for run in history), default=0)
        self.open = {run.run_id for run in live}

    def pushed(self, own: set[str]) -> list[Run]:
        """Runs of other processes that succeeded since the last look, oldest first."""
        version = self.runs.data_version()
        if version == self._data_version:
            return []  # nobody else wrote to the database since
        self._data_version = version
        # A run's id is taken in the transaction that records it, so new runs are simply the higher numbers.
        new = self.runs.after(self.seen)
        if new:
            self.seen = new[-1].number
        self.open |= {run.run_id for run in new if run.run_id not in own}
        found = self.runs.several(self.open)
        self.open = {run.run_id for run in found if not run.status.is_terminal}  # pruned ones are gone for good
        return [run for run in found if run.status is RunStatus.SUCCEEDED]

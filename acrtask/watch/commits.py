"""Commit triggers: each git context's branch head, polled (ls-remote); a new commit runs the task."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from acrtask import context as contexts
from acrtask.model import Status, Task
from acrtask.run_record import Run, RunTrigger, TriggerKind

log = logging.getLogger("acrtask.watch")

LsRemote = Callable[..., str]  # (location, branch, token=...) -> the branch head's commit


class CommitPoller:
    """Polls each git context's branch head; a new commit runs the task (once per new head)."""

    def __init__(self, ls_remote: LsRemote, interval: float) -> None:
        self.ls_remote = ls_remote
        self.interval = interval
        self._known: dict[str, str | None] = {}
        self._next = 0.0

    def baseline(self, history: Iterable[Run]) -> None:
        """Start from the commit each task last built, so commits made while watch was down still run.

        `history` is newest first, as RunStore.all() gives it."""
        for run in reversed(list(history)):
            if run.commit_id:
                self._known[run.task] = run.commit_id

    def due(self, tasks: Iterable[Task], now: float) -> list[tuple[str, RunTrigger]]:
        if now < self._next:
            return []
        self._next = now + self.interval
        fired = []
        for task in tasks:
            source = next((s for s in task.trigger.sources if s.status is Status.ENABLED), None)
            if task.status is not Status.ENABLED or source is None:
                continue
            try:
                ctx = contexts.parse(task.step.context_path)
                token = task.step.context_access_token  # --git-access-token, for an https context
                head = self.ls_remote(ctx.location, ctx.branch, **({"token": token} if token else {}))
            except Exception as exc:  # an unreachable remote must not stop the loop
                log.warning("Could not read the branch head of task %s: %s", task.name, exc)
                continue
            known = self._known.get(task.name)
            self._known[task.name] = head
            if known is not None and known != head:
                fired.append((task.name, RunTrigger(kind=TriggerKind.COMMIT, commit_id=head)))
        return fired

    def next_time(self) -> float:
        return self._next

"""Which finished runs watch runs again: those that lost their build endpoint mid-build, once.

A run whose endpoint stopped answering during the build says nothing about the task, so a
triggered one (base image update, timer, commit) is queued again, on whatever endpoint answers.
Only once: the run queued again is not repeated if it loses its endpoint too. A manual run had
the user's one-off arguments and a user waiting for it, so it is left Failed; so are runs that
other processes started.
"""

from __future__ import annotations

from acrtask.run_record import Run, RunStatus, TriggerKind


def should_requeue(run: Run, *, ours: bool, retries: set[str]) -> bool:
    """Whether `run` (just finished) is queued again; `retries` holds the runs that are themselves retries."""
    return (run.status is RunStatus.FAILED and run.agent_lost and ours
            and run.trigger.kind is not TriggerKind.MANUAL and run.run_id not in retries)

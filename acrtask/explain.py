"""What people read about tasks and runs, made from the facts: why a run happened (a sentence for logs,
notifications and the status page) and which triggers a task has (the TRIGGERS column). Pure."""

from __future__ import annotations

from typing import Any

from acrtask.run_record import RunTrigger, TriggerKind


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "none"


def reason(trigger: RunTrigger) -> str:
    if trigger.kind is TriggerKind.BASE_IMAGE_UPDATE:
        via = f", pushed by run {trigger.upstream_run_id}" if trigger.upstream_run_id else ""
        step = f" (step {trigger.base_image_step})" if trigger.base_image_step else ""
        return (f"base image {trigger.base_image}{step} changed: {_short(trigger.old_digest)} -> "
                f"{_short(trigger.new_digest)}{via}")
    if trigger.kind is TriggerKind.TIMER:
        return f"timer {trigger.timer_name} ({trigger.schedule_occurrence})"
    if trigger.kind is TriggerKind.COMMIT:
        return f"commit {trigger.commit_id}"
    return "manual run"


def _enabled(trigger: Any) -> bool:
    return isinstance(trigger, dict) and bool(trigger) and trigger.get("status", "Enabled") == "Enabled"


def trigger_kinds(trigger: dict[str, Any]) -> list[str]:
    """The enabled kinds of a task document's `trigger`, in az's order (`task list -o table`'s TRIGGERS, the
    status page's). A base-image trigger shown as null was created off. Read from the document, so listing
    thousands of tasks builds no Task."""
    kinds = []
    if _enabled(trigger.get("baseImageTrigger")):
        kinds.append("BASE_IMAGE")
    if any(_enabled(source) for source in trigger.get("sourceTriggers") or ()):
        kinds.append("SOURCE")
    if any(_enabled(timer) for timer in trigger.get("timerTriggers") or ()):
        kinds.append("TIMER")
    return kinds

"""The bodies notifications carry. Pure: values in, JSON-ready dicts out (ids and time come in).

- The update-trigger POST (az's `--update-trigger-endpoint`). ACR does not publish the body it sends, so
  acrtask sends ACR's documented run fields: `runId`, `task`, `runType`, `status`, `platform`, and the
  run's `imageUpdateTrigger` {id, timestamp, images[{registry, repository, tag, digest}]}, with each
  image's `previousDigest` beside its new `digest`; an `id`/`timestamp`/`action` envelope as ACR's
  registry webhooks have.
- Run events of `acrtask notify` targets, as json (the run in az's shape), slack ({"text"}) or teams
  (an Office 365 connector MessageCard).
"""

from __future__ import annotations

from typing import Any

from acrtask import explain
from acrtask.notify.targets import Format, RunEvent
from acrtask.run_record import Run, RunStatus, TriggerKind
from acrtask.run_shape import az_run

UPDATE_TRIGGER_ACTION = "baseImageUpdate"
_FAILED = frozenset({RunStatus.FAILED, RunStatus.ERROR, RunStatus.TIMEOUT})


def run_event(run: Run, queued: bool) -> RunEvent | None:
    """Which event a run's news is: queued by a trigger, or ended (a Canceled run is none)."""
    if queued:
        return RunEvent.TRIGGERED
    if run.status is RunStatus.SUCCEEDED:
        return RunEvent.SUCCEEDED
    return RunEvent.FAILED if run.status in _FAILED else None


def update_trigger(run: Run, event_id: str, timestamp: str) -> dict[str, Any]:
    """What the task's update-trigger endpoint gets when a base image update queued `run`."""
    assert run.trigger.kind is TriggerKind.BASE_IMAGE_UPDATE
    shown = az_run(run)
    return {
        "id": event_id,
        "timestamp": timestamp,
        "action": UPDATE_TRIGGER_ACTION,
        "task": run.task,
        "runId": run.run_id,
        "runType": shown["runType"],
        "status": shown["status"],
        "platform": shown["platform"],
        "reason": explain.reason(run.trigger),
        # The envelope's event id and time, over the run's own (which names the base update, not this POST).
        "imageUpdateTrigger": {**shown.get("imageUpdateTrigger", {"images": []}), "id": event_id,
                               "timestamp": timestamp},
    }


def line(run: Run, event: RunEvent) -> str:
    """One sentence for chat and logs."""
    if event is RunEvent.TRIGGERED:
        return f"acrtask queued run {run.run_id} of {run.task}: {explain.reason(run.trigger)}"
    seconds = round(run.duration_seconds() or 0)
    text = (f"acrtask run {run.run_id} of {run.task} {run.status.value.lower()} after {seconds}s "
            f"({explain.reason(run.trigger)})")
    return text + (f": {run.error}" if run.error and event is RunEvent.FAILED else "")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_notification(run: Run, event: RunEvent, fmt: Format, timestamp: str) -> dict[str, Any]:
    text = line(run, event)
    if fmt is Format.SLACK:
        return {"text": _slack_escape(text)}
    if fmt is Format.TEAMS:
        colour = {RunEvent.SUCCEEDED: "2EB886", RunEvent.FAILED: "D00000"}.get(event, "0078D4")
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": text,
                "themeColor": colour, "title": f"acrtask: {run.task} {event}", "text": text}
    record = {k: v for k, v in az_run(run).items() if k != "pid"}
    return {"event": str(event), "timestamp": timestamp, "task": run.task, "runId": run.run_id,
            "status": str(run.status), "reason": explain.reason(run.trigger), "run": record}

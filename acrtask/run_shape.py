"""az's JSON shape of a run, made from its record's facts: what `-o json` shows and notifications carry.

Beside the stored facts az shows `name` (the run id again), `runType` (AutoRun for every run of a task:
ACR's task runs are AutoRuns, AutoBuild its legacy kind), one section for the trigger that started it
(`imageUpdateTrigger`, `timerTrigger`, `sourceTrigger`) and acrtask's `reason` sentence. Pure.
"""

from __future__ import annotations

import uuid
from typing import Any

from acrtask.explain import reason
from acrtask.run_record import Run, TriggerKind, output_image_dict
from acrtask.stored import drop_none

AUTO_RUN = "AutoRun"


def az_run(run: Run) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "runId": run.run_id, "name": run.run_id, "task": run.task, "status": str(run.status),
        "runType": str(run.run_type or AUTO_RUN),
        "createTime": run.create_time, "startTime": run.start_time,
        "finishTime": run.finish_time, "platform": run.platform.to_dict(),
        "outputImages": [output_image_dict(image) for image in run.output_images],
        "runErrorMessage": run.error, "trigger": run.trigger.to_dict(), "reason": reason(run.trigger),
        "pid": run.pid, "registry": run.registry, "steps": [step.to_dict() for step in run.steps] or None,
        "agentPoolName": run.agent, "agentLost": run.agent_lost or None,
        **_trigger_section(run),
        "sourceCommitId": run.commit_id,
    }
    return drop_none(shown)


def _trigger_section(run: Run) -> dict[str, Any]:
    trigger = run.trigger
    if trigger.kind is TriggerKind.BASE_IMAGE_UPDATE and trigger.base_image:
        base = trigger.base_image
        # One id per base update: every run the same move of the same tag started shares it.
        return {"imageUpdateTrigger": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}@{trigger.new_digest}")),
            "timestamp": run.create_time,
            "images": [drop_none({"registry": base.registry, "repository": base.repository, "tag": base.tag,
                                  "digest": trigger.new_digest, "previousDigest": trigger.old_digest})]}}
    if trigger.kind is TriggerKind.TIMER:
        return {"timerTrigger": drop_none({"timerTriggerName": trigger.timer_name,
                                           "scheduleOccurrence": trigger.schedule_occurrence})}
    if trigger.kind is TriggerKind.COMMIT:
        return {"sourceTrigger": drop_none({"eventType": "commit", "commitId": trigger.commit_id})}
    return {}
